"""Norms applied with a frozen scale, so that they act linearly on parts of their input.

A RMSNorm or LayerNorm computes ``f(x) = center(x) * s(x) * w (+ b)`` with a scale
``s(x)`` that depends on the whole input. Holding ``s`` at its value for the full input
makes ``f`` linear, so contributions to the residual stream can be pushed through it
one at a time and still add up: ``sum_i apply(part_i, s) + b == f(sum_i part_i)``.
This is what ``ActivationCache.apply_ln_to_stack`` and the per-head ``hook_result`` of
families with a post-attention norm (Gemma 2/3) use.

Kinds are recognised by behaviour, not by class: ``nn.LayerNorm`` is a LayerNorm, any
other module with a 1-d ``weight`` and an ``eps`` / ``variance_epsilon`` is an elementwise
RMSNorm whose effective weight (``w`` for Llama, ``1 + w`` for Gemma) is read off by
applying it to a vector of ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import nn

__all__ = ["FrozenNorm", "frozen_norm"]


@dataclass(frozen=True)
class FrozenNorm:
    """A norm module reduced to its linear parts: centering, effective weight, bias, eps."""

    center: bool
    """LayerNorm subtracts the mean; RMSNorm does not."""
    weight: Float[torch.Tensor, " d_model"]
    """Effective elementwise weight (``1 + w`` for Gemma's RMSNorm)."""
    bias: Float[torch.Tensor, " d_model"] | None
    """LayerNorm bias (added once, not per part)."""
    eps: float

    def scale(self, x: Float[torch.Tensor, "... d_model"]) -> Float[torch.Tensor, "... 1"]:
        """``s(x)``: one over the root mean square (of the centred input, for LayerNorm)."""
        xf = x.float()
        if self.center:
            xf = xf - xf.mean(-1, keepdim=True)
        return torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)

    def apply(
        self, part: Float[torch.Tensor, "... d_model"], scale: Float[torch.Tensor, "... 1"]
    ) -> Float[torch.Tensor, "... d_model"]:
        """Push one part of the input through the norm with the scale held fixed (no bias)."""
        pf = part.float()
        if self.center:
            pf = pf - pf.mean(-1, keepdim=True)
        return (pf * scale * self.weight.float()).to(part.dtype)


def _eps(module: nn.Module) -> float:
    for attr in ("eps", "variance_epsilon", "epsilon"):
        value = getattr(module, attr, None)
        if isinstance(value, (int, float)):
            return float(value)
    raise TypeError(f"{type(module).__name__} has no eps attribute; cannot treat it as a norm")


def frozen_norm(module: nn.Module) -> FrozenNorm:
    """Describe a LayerNorm or elementwise RMSNorm module as a :class:`FrozenNorm`."""
    weight = getattr(module, "weight", None)
    if isinstance(module, nn.LayerNorm):
        d = module.normalized_shape[-1]
        w = module.weight.detach() if module.weight is not None else torch.ones(d)
        b = module.bias.detach() if module.bias is not None else None
        return FrozenNorm(center=True, weight=w, bias=b, eps=float(module.eps))
    if not isinstance(weight, torch.Tensor) or weight.ndim != 1:
        raise TypeError(f"{type(module).__name__} is not a LayerNorm or an elementwise RMSNorm")
    eps = _eps(module)
    with torch.no_grad():
        ones = torch.ones(weight.shape[0], dtype=torch.float32, device=weight.device)
        out = module.forward(ones.to(weight.dtype)).float()  # .forward: no hooks fire
    # RMSNorm(1) = 1 * rsqrt(1 + eps) * w_eff
    w_eff = out * (1.0 + eps) ** 0.5
    return FrozenNorm(center=False, weight=w_eff, bias=None, eps=eps)
