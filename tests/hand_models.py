"""A hand-built 2-layer attention-only induction circuit, and a :class:`Task` over it.

The residual stream of :func:`induction_model` is a direct sum of one-hot subspaces
(``V`` = ``d_vocab``, ``N`` = ``n_ctx``)::

    TOK  [0, V)          the current token (the embedding)
    POS  [V, V+N)        the position (the positional embedding)
    PREV [V+N, 2V+N)     the previous token, written by the layer-0 previous-token head
    OUT  [2V+N, 3V+N)    the predicted token, written by the layer-1 induction head; the only thing W_U reads

- layer 0, head ``prev_head``: Q reads POS[q] -> e_q, K reads POS[k] -> e_{k+1}, so the query at q
  scores ``sharpness`` on key q-1 and 0 elsewhere (query 0 can only attend to itself);
  OV maps TOK[t] -> PREV[t].
- layer 1, head ``induction_head``: Q reads TOK[t] -> e_t, K reads PREV[t] -> e_t, so the query of
  token t attends to the keys whose previous token was t; OV maps TOK[t] -> OUT[t].
- ``W_U[OUT[t], t] = logit_scale``: the logits are the induction head's copy of the attended token.
- Every other head has small Gaussian weights (std ``inert_std``): nearly uniform attention and a
  negligible output, but finite composition scores (an all-zero head would give 0/0).

Token 0 is reserved as BOS for :func:`induction_task` (the previous-token head at position 0
attends to itself, so position 0's PREV is its own token; a BOS there never matches a query).
No LayerNorm, no MLP, no biases: every path is linear up to the softmaxes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int

import circuitscope as cs
from circuitscope.tasks.task import Task
from circuitscope.toy.model import build_toy

__all__ = ["InductionInfo", "induction_model", "induction_task", "repeated_tokens", "second_half_accuracy"]

BOS = 0


@dataclass(frozen=True)
class InductionInfo:
    """Where the planted circuit lives in :func:`induction_model`."""

    prev_head: tuple[int, int]
    """(layer, head) of the previous-token head (layer 0)."""
    induction_head: tuple[int, int]
    """(layer, head) of the induction head (layer 1); its keys read ``prev_head``'s output (K-composition)."""
    planted: tuple[tuple[int, int], ...]
    """Both planted heads; every other head is inert."""
    bos: int
    """Reserved BOS token id (never sampled as a random token)."""
    subspaces: dict[str, tuple[int, int]]
    """Residual-stream slices ``[start, stop)`` of ``tok``, ``pos``, ``prev`` and ``out``."""


def _write_head(attn: Any, rows: slice, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor) -> None:
    """One head's query, key, value rows and output columns of a toy attention block."""
    attn.q.weight[rows] = q
    attn.k.weight[rows] = k
    attn.v.weight[rows] = v
    attn.o.weight[:, rows] = o


def induction_model(
    d_vocab: int = 64,
    n_ctx: int = 64,
    n_heads: int = 2,
    prev_head: int = 0,
    induction_head: int = 1,
    sharpness: float = 30.0,
    logit_scale: float = 10.0,
    inert_std: float = 1e-3,
    seed: int = 0,
) -> tuple[cs.HookedModel, InductionInfo]:
    """The hand-set 2-layer attention-only induction model (see the module docstring) and its :class:`InductionInfo`."""
    V, N = d_vocab, n_ctx
    d_head = max(V, N)
    tok, pos, prev, out = 0, V, V + N, 2 * V + N
    d_model = 3 * V + N
    hf = build_toy(
        seed=seed,
        d_vocab=V,
        n_ctx=N,
        d_model=d_model,
        n_layers=2,
        n_heads=n_heads,
        d_head=d_head,
        attn_only=True,
        layer_norm=False,
        positional="learned",
        bias=False,
        initializer_range=inert_std,
    )
    q_scale = sharpness * math.sqrt(d_head)  # scores are q.k / sqrt(d_head)
    t = torch.arange(V)
    p = torch.arange(N)
    with torch.no_grad():
        hf.embed.weight.zero_()
        hf.embed.weight[t, tok + t] = 1.0
        hf.pos_embed.weight.zero_()
        hf.pos_embed.weight[p, pos + p] = 1.0
        hf.unembed.weight.zero_()
        hf.unembed.weight[t, out + t] = logit_scale

        def head_rows(h: int) -> slice:
            return slice(h * d_head, (h + 1) * d_head)

        a0: Any = hf.blocks[0].attn
        rows = head_rows(prev_head)
        q0 = torch.zeros(d_head, d_model)
        q0[p, pos + p] = q_scale  # the query at q -> e_q
        k0 = torch.zeros(d_head, d_model)
        k0[p[1:], pos + p[:-1]] = 1.0  # the key at k -> e_{k+1}
        v0 = torch.zeros(d_head, d_model)
        v0[t, tok + t] = 1.0
        o0 = torch.zeros(d_model, d_head)
        o0[prev + t, t] = 1.0
        _write_head(a0, rows, q0, k0, v0, o0)

        a1: Any = hf.blocks[1].attn
        rows = head_rows(induction_head)
        q1 = torch.zeros(d_head, d_model)
        q1[t, tok + t] = q_scale
        k1 = torch.zeros(d_head, d_model)
        k1[t, prev + t] = 1.0
        v1 = torch.zeros(d_head, d_model)
        v1[t, tok + t] = 1.0
        o1 = torch.zeros(d_model, d_head)
        o1[out + t, t] = 1.0
        _write_head(a1, rows, q1, k1, v1, o1)
    model = cs.HookedModel(hf.eval())
    info = InductionInfo(
        prev_head=(0, prev_head),
        induction_head=(1, induction_head),
        planted=((0, prev_head), (1, induction_head)),
        bos=BOS,
        subspaces={"tok": (tok, tok + V), "pos": (pos, pos + N), "prev": (prev, prev + V), "out": (out, out + V)},
    )
    return model, info


def repeated_tokens(
    d_vocab: int, half: int, n: int, seed: int = 0
) -> tuple[Int[torch.Tensor, "n pos"], Int[torch.Tensor, "n half"]]:
    """``[BOS, r, r]`` with ``r`` ``half`` distinct tokens from [1, d_vocab) (no repeats inside a half), and ``r``."""
    if half < 2 or half > d_vocab - 1:
        raise ValueError(f"half must be in [2, {d_vocab - 1}], got {half}")
    gen = torch.Generator().manual_seed(seed)
    r = torch.stack([torch.randperm(d_vocab - 1, generator=gen)[:half] + 1 for _ in range(n)])
    bos = torch.full((n, 1), BOS, dtype=torch.long)
    return torch.cat([bos, r, r], dim=1), r


def induction_task(model: cs.HookedModel, n: int = 16, seq_len: int = 12, seed: int = 0) -> Task:
    """A :class:`Task` on repeated random tokens for :func:`induction_model` (or any token model).

    ``seq_len`` is the length ``h`` of the random half ``r`` (distinct tokens from [1, d_vocab)).
    Clean: ``[BOS, r_0..r_{h-1}, r_0..r_{h-2}]`` (length ``2h``), answer at the last position:
    correct ``r_{h-1}`` (the next token of the repeat). Corrupted: the first half replaced by
    ``s``, ``h`` other random tokens disjoint from ``r`` (same length); incorrect ``s_{h-1}``, the
    token the corrupted first half has at the answer's place. Prompts are the token ids as text.
    """
    V = model.cfg.d_vocab
    if seq_len < 2 or 2 * seq_len > V - 1:
        raise ValueError(f"seq_len must be in [2, {(V - 1) // 2}] for d_vocab={V} (two disjoint halves), got {seq_len}")
    if 2 * seq_len > model.cfg.n_ctx:
        raise ValueError(f"prompts of 2 * seq_len = {2 * seq_len} tokens exceed the model's n_ctx={model.cfg.n_ctx}")
    gen = torch.Generator().manual_seed(seed)
    perms = torch.stack([torch.randperm(V - 1, generator=gen)[: 2 * seq_len] + 1 for _ in range(n)])
    r, s = perms[:, :seq_len], perms[:, seq_len:]
    bos = torch.full((n, 1), BOS, dtype=torch.long)
    clean = torch.cat([bos, r, r[:, :-1]], dim=1)
    corrupted = torch.cat([bos, s, r[:, :-1]], dim=1)

    def text(row: torch.Tensor) -> str:
        return " ".join(str(int(x)) for x in row)

    return Task(
        name="induction",
        clean_prompts=[text(row) for row in clean],
        corrupted_prompts=[text(row) for row in corrupted],
        clean_tokens=clean,
        corrupted_tokens=corrupted,
        answer_pos=torch.full((n,), 2 * seq_len - 1, dtype=torch.long),
        correct=r[:, -1].clone(),
        incorrect=s[:, -1].clone(),
        metric="logit_diff",
    )


def second_half_accuracy(
    logits: Float[torch.Tensor, "n pos d_vocab"], tokens: Int[torch.Tensor, "n pos"], half: int
) -> float:
    """Fraction of second-half positions (of ``[BOS, r, r]``) whose argmax is the next token."""
    start = 1 + half  # first position of the repeat; it predicts r_1
    pred = logits[:, start:-1].argmax(-1)
    return float((pred == tokens[:, start + 1 :]).float().mean())
