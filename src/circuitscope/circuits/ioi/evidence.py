"""The evidence for a head's IOI role: attention between roles, OV copying of names, the head detectors.

- **Attention between roles**: the mean (over the clean prompts) of a head's attention from a
  query role to a key role, e.g. ``END->IO`` (a name mover reads the indirect object) or
  ``S2->S1+1`` (an induction head, at the repeated name, looks at the token after its first mention).
- **Copy score** (Wang et al. 2022, section 3.1): the fraction of the task's names whose own token
  is among the top ``k`` (negative heads: the bottom ``k``) of the logits that the head's OV circuit
  writes when it attends to the name, ranked against the whole vocabulary. The name enters as its
  embedding after the first MLP (:func:`~circuitscope.analysis.copying.effective_embeddings`), and
  the logits are :func:`~circuitscope.analysis.copying.head_ov_logits` times ``W_U``.
- **Detectors**: :func:`~circuitscope.analysis._heads.many_detector_scores` (previous-token,
  duplicate-token, induction) on repeated random tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuitscope.analysis import many_detector_scores, repeated_tokens_for_model
from circuitscope.analysis.copying import _rank_counts, effective_embeddings, head_ov_logits
from circuitscope.circuits.ioi.positions import IOIPositions
from circuitscope.circuits.ioi.result import Role
from circuitscope.engine.batching import batch_slices

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["ATTENTION_PAIRS", "detector_table", "name_copy_scores", "role_attention"]

ATTENTION_PAIRS: tuple[tuple[Role, Role], ...] = (
    ("END", "IO"),
    ("END", "S1"),
    ("END", "S2"),
    ("S2", "S1"),
    ("S2", "S1+1"),
    ("S1+1", "S1"),
)
"""The (query role, key role) pairs whose attention is measured, keyed ``"END->IO"`` and so on."""


@torch.no_grad()
def role_attention(
    model: HookedModel, tokens: Int[Tensor, "batch pos"], positions: IOIPositions, batch_size: int = 32
) -> dict[str, Float[Tensor, "layer head"]]:
    """Every head's mean attention from a query role to a key role over the prompts, for :data:`ATTENTION_PAIRS`."""
    cfg = model.cfg
    total = {f"{q}->{k}": torch.zeros(cfg.n_layers, cfg.n_heads, dtype=torch.float64) for q, k in ATTENTION_PAIRS}
    for rows in batch_slices(tokens.shape[0], batch_size):
        index = torch.arange(rows.start, rows.stop)
        local = torch.arange(len(index))
        at = {(q, k): (positions.of(q)[index], positions.of(k)[index]) for q, k in ATTENTION_PAIRS}

        def reduce(pattern: torch.Tensor, hook: Any, at: dict = at, local: Tensor = local) -> None:
            # pattern: [batch, head, query, key]
            for (q, k), (qs, ks) in at.items():
                total[f"{q}->{k}"][hook.layer] += pattern[local, :, qs, ks].double().sum(0).cpu()

        with model.hooks([("blocks.*.attn.hook_pattern", reduce)]):
            model(tokens[rows].to(model.device))
    return {name: (value / tokens.shape[0]).float() for name, value in total.items()}


def detector_table(model: HookedModel, seed: int = 0) -> dict[str, Float[Tensor, "layer head"]]:
    """The previous-token, duplicate-token and induction scores of every head, on repeated random tokens."""
    tokens = repeated_tokens_for_model(model, seed=seed)
    return {name: scores.scores for name, scores in many_detector_scores(model, tokens).items()}


@torch.no_grad()
def name_copy_scores(
    model: HookedModel,
    heads: list[tuple[int, int]],
    names: Int[Tensor, " n"],
    *,
    k: int = 5,
    chunk: int = 8192,
) -> dict[tuple[int, int], tuple[float, float]]:
    """``(copying, suppression)`` of each head on the name tokens ``names``: the fraction whose own logit is among
    the ``k`` highest / lowest of the vocabulary (see the module docstring)."""
    if not heads:
        return {}
    names = names.unique().long().cpu()
    pre, post = effective_embeddings(model, names)
    W_U = model.W_U.detach().cpu()
    W_U = W_U if W_U.dtype == torch.float32 else W_U.float()
    vocabulary = torch.arange(W_U.shape[1])
    weights = (model.W_V.detach(), model.W_O.detach())
    out: dict[tuple[int, int], tuple[float, float]] = {}
    for layer in sorted({layer for layer, _ in heads}):
        y = head_ov_logits(model, layer, pre if layer == 0 else post, weights)  # [head, n, d_model]
        wanted = [h for lay, h in heads if lay == layer]
        ge, le = _rank_counts(y[wanted], names, W_U, vocabulary, chunk)
        for i, head in enumerate(wanted):
            out[(layer, head)] = (float((ge[i] < k).float().mean()), float((le[i] < k).float().mean()))
    return out
