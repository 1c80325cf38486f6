"""Per-layer similarity of two models' activations (linear CKA) and per-head attention differences."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from jaxtyping import Float

from circuitscope.diffing.pairing import check_same_architecture, check_same_tokenizer
from circuitscope.engine.grid import AxisName, ScoreGrid, component_labels
from circuitscope.errors import ShapeError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["AttentionDiff", "LayerCKA", "attention_diff", "layer_cka", "linear_cka"]


def linear_cka(x: Float[torch.Tensor, "n d1"], y: Float[torch.Tensor, "n d2"]) -> float:
    """Linear CKA (Kornblith et al. 2019): ``|Yc^T Xc|_F^2 / (|Xc^T Xc|_F |Yc^T Yc|_F)``, 1 for identical geometry."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ShapeError(f"CKA needs [n, d] matrices with the same n, got {tuple(x.shape)} and {tuple(y.shape)}")
    xc = x.double() - x.double().mean(0)
    yc = y.double() - y.double().mean(0)
    num = (yc.T @ xc).norm() ** 2
    den = (xc.T @ xc).norm() * (yc.T @ yc).norm()
    return float(num / den) if float(den) > 0 else float("nan")


G = TypeVar("G", bound=ScoreGrid)


def _grid(
    kind: type[G], model: HookedModel, scores: torch.Tensor, axes: tuple[AxisName, ...], metric: str, **extra: Any
) -> G:
    """A comparison's score grid over ``model``'s components: two models, no clean or corrupted run."""
    labels = component_labels(model, axes)
    return kind(scores=scores, axes=axes, labels=labels, metric=metric, clean_value=None, corrupted_value=None, **extra)


def _tokens(model: HookedModel, texts: Sequence[str], max_tokens: int) -> list[torch.Tensor]:
    return [model.to_tokens(t, truncate=True)[:, :max_tokens] for t in texts]


@dataclass(frozen=True, kw_only=True)
class LayerCKA(ScoreGrid):
    """CKA between A's and B's residual stream after each layer, over every token of the texts.

    A score grid on the axis ``("layer",)`` (``scores`` is also ``cka``); there is no clean or corrupted run.
    """

    layers: list[int]
    n_tokens: int
    """Tokens the CKA is computed over (BOS left out)."""

    @property
    def cka(self) -> Float[torch.Tensor, " layer"]:
        return self.scores

    def to_dict(self) -> dict[str, Any]:
        return {"layers": self.layers, "cka": self.cka.tolist(), "n_tokens": self.n_tokens}


@torch.no_grad()
def layer_cka(
    a: HookedModel, b: HookedModel, texts: Sequence[str], hook: str = "hook_resid_post", max_tokens: int = 256
) -> LayerCKA:
    """Linear CKA of ``blocks.L.{hook}`` between the models, layer by layer (BOS left out: it is an outlier)."""
    check_same_tokenizer(a, b)
    check_same_architecture(a, b)
    names = [f"blocks.{i}.{hook}" for i in range(a.cfg.n_layers)]
    xs: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    ys: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    skip = 1 if a.tok.default_prepend_bos else 0
    for ids in _tokens(a, texts, max_tokens):
        _, ca = a.run_with_cache(ids, names=names, stop_early=True)
        _, cb = b.run_with_cache(ids, names=names, stop_early=True)
        for n in names:
            xs[n].append(ca[n][0, skip:].float().cpu())
            ys[n].append(cb[n][0, skip:].float().cpu())
    cka = torch.tensor([linear_cka(torch.cat(xs[n]), torch.cat(ys[n])) for n in names])
    n_tokens = int(sum(x.shape[0] for x in xs[names[0]]))
    return _grid(LayerCKA, a, cka, ("layer",), "linear CKA", layers=list(range(a.cfg.n_layers)), n_tokens=n_tokens)


@dataclass(frozen=True, kw_only=True)
class AttentionDiff(ScoreGrid):
    """How differently each head attends: mean over query positions of the total-variation distance of the patterns.

    A score grid on the axes ``("layer", "head")`` (``scores`` is also ``distance``); no clean or corrupted run.
    """

    @property
    def distance(self) -> Float[torch.Tensor, "layer head"]:
        """In [0, 1]: 0 same pattern, 1 disjoint attention."""
        return self.scores

    def to_dict(self) -> dict[str, Any]:
        flat = self.distance.flatten()
        top = flat.argsort(descending=True)[:10]
        n_heads = self.distance.shape[1]
        return {
            "distance": self.distance.tolist(),
            "mean": float(flat.mean()),
            "top_heads": [
                {"head": f"L{int(i) // n_heads}H{int(i) % n_heads}", "distance": float(flat[i])} for i in top
            ],
        }


@torch.no_grad()
def attention_diff(a: HookedModel, b: HookedModel, texts: Sequence[str], max_tokens: int = 256) -> AttentionDiff:
    """Per head: ``0.5 * sum_k |pattern_A[q, k] - pattern_B[q, k]|`` averaged over queries and texts."""
    check_same_tokenizer(a, b)
    check_same_architecture(a, b)
    names = [f"blocks.{i}.attn.hook_pattern" for i in range(a.cfg.n_layers)]
    total = torch.zeros(a.cfg.n_layers, a.cfg.n_heads, dtype=torch.float64)
    count = 0
    for ids in _tokens(a, texts, max_tokens):
        _, ca = a.run_with_cache(ids, names=names, stop_early=True)
        _, cb = b.run_with_cache(ids, names=names, stop_early=True)
        for i, n in enumerate(names):
            tv = 0.5 * (ca[n][0].double() - cb[n][0].double()).abs().sum(-1)  # [head, query]
            total[i] += tv.sum(-1).cpu()
        count += ids.shape[1]
    distance = (total / max(count, 1)).float()
    return _grid(AttentionDiff, a, distance, ("layer", "head"), "attention-pattern total-variation distance")
