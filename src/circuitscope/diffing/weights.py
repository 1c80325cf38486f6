"""Weight differences between two models of one architecture, by component."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from circuitscope.diffing.pairing import ModelMismatchError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["WeightDiff", "component_of", "weight_diff"]

_LAYER = re.compile(r"(?:^|\.)(?:layers|h|layer|blocks)\.(\d+)\.")


def component_of(name: str) -> str:
    """A Hugging Face parameter name -> ``embed``, ``unembed``, ``final_norm`` or ``L{i}.attn/mlp/norm``."""
    m = _LAYER.search(name)
    lower = name.lower()
    if m is None:
        if "embed_tokens" in lower or "wte" in lower or "word_embeddings" in lower or "embed_in" in lower:
            return "embed"
        if "lm_head" in lower or "embed_out" in lower:
            return "unembed"
        if "wpe" in lower or "position" in lower:
            return "pos_embed"
        return "final_norm" if "norm" in lower or "ln_f" in lower else "other"
    kind = (
        "norm"
        if ("norm" in lower or ".ln_" in lower)
        else "attn"
        if ("attn" in lower or "attention" in lower)
        else "mlp"
    )
    return f"L{m.group(1)}.{kind}"


@dataclass(frozen=True)
class WeightDiff:
    """``|theta_B - theta_A|`` and ``|theta_A|`` per component (Frobenius norms over its parameters)."""

    components: list[str]
    norm_a: list[float]
    diff_norm: list[float]
    n_params: list[int]

    @property
    def relative(self) -> list[float]:
        return [
            d / a if a > 0 else (0.0 if d == 0 else float("inf"))
            for d, a in zip(self.diff_norm, self.norm_a, strict=True)
        ]

    @property
    def total_relative(self) -> float:
        a = sum(x * x for x in self.norm_a) ** 0.5
        d = sum(x * x for x in self.diff_norm) ** 0.5
        return d / a if a > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_relative_diff": self.total_relative,
            "components": [
                {"component": c, "norm_a": a, "diff_norm": d, "relative": r, "n_params": n}
                for c, a, d, r, n in zip(
                    self.components, self.norm_a, self.diff_norm, self.relative, self.n_params, strict=True
                )
            ],
        }


@torch.no_grad()
def weight_diff(a: HookedModel, b: HookedModel) -> WeightDiff:
    """Compare parameters by name; refuse models whose parameter names or shapes differ."""
    pa = dict(a.hf_model.named_parameters())
    pb = dict(b.hf_model.named_parameters())
    if pa.keys() != pb.keys():
        missing = sorted(set(pa) ^ set(pb))[:5]
        raise ModelMismatchError(
            f"the models have different parameters (e.g. {missing}); compare two checkpoints of one architecture"
        )
    sq_a: dict[str, float] = {}
    sq_d: dict[str, float] = {}
    count: dict[str, int] = {}
    for name, wa in pa.items():
        wb = pb[name]
        if wa.shape != wb.shape:
            raise ModelMismatchError(f"parameter {name} has shape {tuple(wa.shape)} in A but {tuple(wb.shape)} in B")
        c = component_of(name)
        sq_a[c] = sq_a.get(c, 0.0) + float(wa.double().pow(2).sum())
        sq_d[c] = sq_d.get(c, 0.0) + float((wb.double() - wa.double().to(wb.device)).pow(2).sum())
        count[c] = count.get(c, 0) + wa.numel()

    def order(c: str) -> tuple[int, int, str]:
        m = re.match(r"L(\d+)\.(.*)", c)
        if m:
            return (1, int(m.group(1)), m.group(2))
        return (0 if c in ("embed", "pos_embed") else 2, 0, c)

    comps = sorted(sq_a, key=order)
    return WeightDiff(
        comps, [sq_a[c] ** 0.5 for c in comps], [sq_d[c] ** 0.5 for c in comps], [count[c] for c in comps]
    )
