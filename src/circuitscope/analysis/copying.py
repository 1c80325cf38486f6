"""Copying and copy-suppression scores of every head, read off its OV circuit.

A head that attends to a token ``t`` moves ``x_t W_V W_O`` into the residual stream. It is a
*copying* head (Elhage et al. 2021; Wang et al. 2022, the name movers of IOI) if that raises
``t``'s own logit above the others, and a *copy-suppression* head (McDougall et al. 2023, "Copy
Suppression") if it lowers ``t``'s own logit below the others. For each head and each token
``t`` of a fixed sample:

1. ``x_t`` is the **effective embedding**: the residual stream at ``t`` in the shortest prompt
   the model sees, ``[BOS, t]`` (or ``[t]`` for a model without BOS). Heads of layer 0 read
   ``blocks.0.hook_resid_pre`` (the embedding as the model scales it, plus its position
   embedding if it has learned ones); heads of later layers read ``blocks.0.hook_resid_post``,
   i.e. after block 0's attention and MLP. Wang et al. and McDougall et al. use the embedding
   after MLP0, because in GPT-2 (and most models since) the first MLP acts as part of the
   embedding and later heads never see the raw ``W_E`` row; running block 0 itself gives that
   for any family (Gemma's sqrt(d_model) scale and extra norms included) without modelling it.
2. ``u = ln1_l(x_t)`` through the head's own input norm: centring (LayerNorm), the scale of
   ``x_t`` and the weight, **no bias**.
3. ``o = u W_V[l, h] W_O[l, h]`` (grouped-query heads use their key/value head), **no bias**.
4. ``o`` goes through the norm after attention if the family has one (Gemma 2/3), then the
   final norm, both as in step 2 (weight and centring, scale of ``o`` itself, no bias), then
   ``W_U``: the logits ``y`` the head adds by attending to ``t``.

Biases are left out on purpose: they are the same whichever token is attended, so they carry
no token identity; scales are positive per-token numbers, so they change no ranking.

``t`` counts as *copied* if fewer than ``k`` other candidate tokens ``v`` have ``y_v >= y_t``
(own logit in the top ``k``) and as *suppressed* if fewer than ``k`` have ``y_v <= y_t``
(bottom ``k``); ties count against ``t``, so a head whose OV circuit is zero scores 0 on both.
``copying`` and ``copy_suppression`` are the fractions of sampled tokens copied / suppressed,
in [0, 1]. The candidates are the sampled tokens themselves (``candidates="sample"``, the
default) or the whole vocabulary (``"full"``). A head with random weights scores about
``k / n_candidates`` (the ``baseline``).

The sample is ``n_tokens`` ids drawn with a fixed seed from the non-special range (the same
range as the attention detectors' random tokens, minus the tokenizer's special ids); a
vocabulary no larger than ``n_tokens`` is used whole. Ranking 2,000 tokens against Gemma's
262,144-token vocabulary for all 72 heads would cost about 5e13 flops, minutes on a CPU;
against the sample it costs under 1e12. Logits are computed in chunks of candidates so
memory stays at ``n_tokens x chunk`` per head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import torch
from jaxtyping import Float, Int

from circuitscope.analysis._heads import HeadScores, bos_id, first_ordinary_id
from circuitscope.core.norms import FrozenNorm, frozen_norm
from circuitscope.core.readout import require_linear_readout
from circuitscope.engine.batching import batch_slices
from circuitscope.errors import ShapeError, require_at_least

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = [
    "CopyingConfig",
    "CopyingScores",
    "copy_suppression_scores",
    "copying_scores",
    "effective_embeddings",
    "head_ov_logits",
    "ov_copying",
    "sample_token_ids",
]

Candidates = Literal["sample", "full"]


@dataclass(frozen=True)
class CopyingConfig:
    """How the OV copying scores are measured."""

    k: int = 5
    """A token is copied (suppressed) if its own logit is among the ``k`` highest (lowest)."""
    n_tokens: int = 2000
    """Number of sampled token ids (the whole non-special vocabulary if it is smaller)."""
    seed: int = 0
    """Seed of the token sample."""
    candidates: Candidates = "sample"
    """Rank the own logit among the sampled tokens (``sample``) or the whole vocabulary (``full``)."""
    chunk: int = 8192
    """Candidate tokens per logits chunk (memory: ``n_tokens x chunk`` floats per head)."""
    batch_size: int = 512
    """Prompts per forward pass when computing the effective embeddings."""

    def __post_init__(self) -> None:
        require_at_least(self, ("k", "n_tokens", "chunk", "batch_size"), prefix="CopyingConfig.")
        if self.candidates not in get_args(Candidates):
            raise ValueError(f"CopyingConfig.candidates must be 'sample' or 'full', got {self.candidates!r}")


@dataclass(frozen=True, kw_only=True)
class CopyingScores(HeadScores):
    """One OV-circuit score (``copying`` or ``copy_suppression``) for every head.

    ``scores`` is the fraction of sampled tokens whose own logit is in the top (bottom) ``k``;
    ``n_queries`` is the number of sampled tokens.
    """

    k: int
    """The ``k`` of top-k / bottom-k."""
    n_candidates: int
    """Number of tokens each own logit is ranked against (itself included)."""

    @property
    def baseline(self) -> float:
        """Expected score of a head with random weights: ``k / n_candidates``."""
        return min(1.0, self.k / self.n_candidates)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the base fields plus ``k``, ``n_candidates`` and ``baseline``."""
        return {**super().to_dict(), "k": self.k, "n_candidates": self.n_candidates, "baseline": self.baseline}


def sample_token_ids(model: HookedModel, n: int, seed: int = 0) -> Int[torch.Tensor, " n"]:
    """``n`` distinct token ids (sorted) from the non-special range, drawn with ``seed``; all of them if fewer."""
    V = model.cfg.d_vocab
    low = first_ordinary_id(model)
    keep = torch.ones(V, dtype=torch.bool)
    keep[:low] = False
    special = getattr(model.tokenizer, "all_special_ids", None) or []
    ids = torch.tensor([i for i in special if 0 <= i < V], dtype=torch.long)
    keep[ids] = False
    pool = keep.nonzero().squeeze(1)
    if pool.numel() < 2:
        raise ShapeError(f"the model's vocabulary ({V}) has fewer than two ordinary tokens to score copying on")
    if pool.numel() <= n:
        return pool
    pick = torch.randperm(pool.numel(), generator=torch.Generator().manual_seed(seed))[:n]
    return pool[pick].sort().values


def effective_embeddings(
    model: HookedModel, tokens: Int[torch.Tensor, " n"], batch_size: int = 512
) -> tuple[Float[torch.Tensor, "n d_model"], Float[torch.Tensor, "n d_model"]]:
    """``(resid_pre of block 0, resid_post of block 0)`` at each token in the prompt ``[BOS, t]`` (or ``[t]``)."""
    bos = bos_id(model)
    names = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post"]
    pre, post = [], []
    with torch.no_grad():
        for rows in batch_slices(tokens.shape[0], batch_size):
            chunk = tokens[rows, None]
            if bos is not None:
                chunk = torch.cat([torch.full_like(chunk, bos), chunk], dim=1)
            _, cache = model.run_with_cache(chunk, names=names, stop_early=True)
            pre.append(cache[names[0]][:, -1].float().cpu())
            post.append(cache[names[1]][:, -1].float().cpu())
    return torch.cat(pre), torch.cat(post)


def _norm_of(module: torch.nn.Module | None) -> FrozenNorm | None:
    """The module's norm as float32 on the CPU, without its bias (None for no norm)."""
    if module is None or isinstance(module, torch.nn.Identity):
        return None
    norm = frozen_norm(module)
    return FrozenNorm(center=norm.center, weight=norm.weight.detach().float().cpu(), bias=None, eps=norm.eps)


def _linear_norm(norm: FrozenNorm | None, x: torch.Tensor) -> torch.Tensor:
    """The norm's centring, scale (of ``x`` itself) and weight; no bias."""
    if norm is None:
        return x
    return norm.apply(x, norm.scale(x)).float()


def head_ov_logits(
    model: HookedModel,
    layer: int,
    x: Float[torch.Tensor, "n d_model"],
    weights: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Float[torch.Tensor, "head n d_model"]:
    """Each head of ``layer``'s OV output for inputs ``x`` (residual vectors), pushed through the
    post-attention and final norms: multiply by ``W_U`` to get the logits (steps 2-4 of the module docstring).
    ``weights`` = ``(model.W_V, model.W_O)`` saves reading them again for every layer."""
    require_linear_readout(model, "the OV circuit's logits")
    wiring = model.wiring
    block = wiring.blocks[layer]
    cfg = model.cfg
    with torch.no_grad():
        all_V, all_O = weights if weights is not None else (model.W_V, model.W_O)
        u = _linear_norm(_norm_of(block.ln1), x.float())
        W_V = all_V[layer].detach().float().cpu()  # [kv_head, d_model, d_head]
        W_O = all_O[layer].detach().float().cpu()  # [head, d_head, d_model]
        W_V = W_V.repeat_interleave(cfg.n_heads // W_V.shape[0], dim=0)
        out = torch.einsum("nd,hde->hne", u, W_V) @ W_O  # [head, n, d_model]
        out = _linear_norm(_norm_of(block.attn_out_norm), out)
        out = _linear_norm(_norm_of(wiring.final_norm), out)
    return out


def _rank_counts(
    y: Float[torch.Tensor, "head n d_model"],
    tokens: Int[torch.Tensor, " n"],
    W_U: Float[torch.Tensor, "d_model d_vocab"],
    candidates: Int[torch.Tensor, " c"],
    chunk: int,
) -> tuple[Int[torch.Tensor, "head n"], Int[torch.Tensor, "head n"]]:
    """For each head and token ``t``: how many other candidates have a logit ``>=`` / ``<=`` ``t``'s own."""
    own = torch.einsum("hne,en->hn", y, W_U[:, tokens])  # [head, n]
    ge = torch.zeros(own.shape, dtype=torch.long)
    le = torch.zeros(own.shape, dtype=torch.long)
    for part in batch_slices(candidates.shape[0], chunk):
        cand = candidates[part]
        W_c = W_U[:, cand] if cand.shape[0] < W_U.shape[1] else W_U
        logits = y @ W_c  # [head, n, c]
        other = (cand[None, :] != tokens[:, None])[None]  # [1, n, c]: leave t itself out
        ge += ((logits >= own[..., None]) & other).sum(-1)
        le += ((logits <= own[..., None]) & other).sum(-1)
    return ge, le


def ov_copying(model: HookedModel, config: CopyingConfig | None = None) -> tuple[CopyingScores, CopyingScores]:
    """``(copying, copy_suppression)`` of every head, in one pass (definitions in the module docstring)."""
    config = config or CopyingConfig()
    cfg = model.cfg
    tokens = sample_token_ids(model, config.n_tokens, config.seed)
    candidates = tokens if config.candidates == "sample" else torch.arange(cfg.d_vocab)
    with torch.no_grad():
        W_U = model.W_U.detach().float().cpu()  # [d_model, d_vocab]
        ids, cand_ids = tokens, candidates
        if config.candidates == "sample":  # only the sampled columns are read: index them 0..n-1
            W_U = W_U[:, tokens].contiguous()
            ids = cand_ids = torch.arange(tokens.shape[0])
        weights = (model.W_V.detach(), model.W_O.detach())
        pre, post = effective_embeddings(model, tokens, config.batch_size)
        copied = torch.zeros(cfg.n_layers, cfg.n_heads)
        suppressed = torch.zeros(cfg.n_layers, cfg.n_heads)
        for layer in range(cfg.n_layers):
            y = head_ov_logits(model, layer, pre if layer == 0 else post, weights)
            ge, le = _rank_counts(y, ids, W_U, cand_ids, config.chunk)
            copied[layer] = (ge < config.k).float().mean(-1)
            suppressed[layer] = (le < config.k).float().mean(-1)
    n, c = int(tokens.shape[0]), int(candidates.shape[0])
    return (
        CopyingScores(name="copying", scores=copied, n_queries=n, k=config.k, n_candidates=c),
        CopyingScores(name="copy_suppression", scores=suppressed, n_queries=n, k=config.k, n_candidates=c),
    )


def copying_scores(model: HookedModel, config: CopyingConfig | None = None) -> CopyingScores:
    """Fraction of sampled tokens whose own logit is in the top ``k`` of each head's OV output."""
    return ov_copying(model, config)[0]


def copy_suppression_scores(model: HookedModel, config: CopyingConfig | None = None) -> CopyingScores:
    """Fraction of sampled tokens whose own logit is in the bottom ``k`` of each head's OV output."""
    return ov_copying(model, config)[1]
