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

from collections.abc import Callable
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


def _eps(module: nn.Module) -> float | None:
    for attr in ("eps", "variance_epsilon", "epsilon"):
        value = getattr(module, attr, None)
        if isinstance(value, (int, float)):
            return float(value)
    return None


def _width(module: nn.Module, weight: object) -> int:
    if isinstance(weight, torch.Tensor) and weight.ndim == 1:
        return int(weight.shape[0])
    shape = getattr(module, "normalized_shape", None)  # a norm without parameters (OLMo's LayerNorm)
    if isinstance(shape, (tuple, list)) and len(shape) == 1 and weight is None:
        return int(shape[0])
    raise TypeError(f"{type(module).__name__} is not a LayerNorm or an elementwise RMSNorm")


def _zero_mean_probe(d: int) -> torch.Tensor:
    """A vector of mean exactly 0 with no zero entry: +-1 alternating (odd widths start 2, -1, -1)."""
    x = torch.tensor([1.0, -1.0]).repeat(d // 2 + 1)[:d]
    if d % 2:
        x[:3] = torch.tensor([2.0, -1.0, -1.0])
    return x


def _probed_eps(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, bias: torch.Tensor) -> float:
    """A centring norm's eps, from ``f(x) = x / sqrt(var + eps) * w + b`` at two scales of ``x`` (w cancels)."""
    var = float(x.pow(2).mean())
    small = 1e-3  # (small x)^2 var is of the order of the usual eps (1e-5..1e-6), so the ratio resolves it
    big_out, small_out = f(x) - bias, f(x * small) - bias
    keep = big_out.abs() > 0
    ratio = float((small_out[keep] / (big_out[keep] * small)).double().mean())  # sqrt((var+eps)/(s^2 var+eps))
    r2 = ratio * ratio
    return max(0.0, var * (1.0 - r2 * small * small) / (r2 - 1.0))


def frozen_norm(module: nn.Module) -> FrozenNorm:
    """Describe a LayerNorm or elementwise RMSNorm module as a :class:`FrozenNorm`.

    Besides ``nn.LayerNorm``, the kind is read off the module's behaviour: a norm whose output is the same
    for the constant inputs 1 and -1 centres its input (a LayerNorm, with or without parameters: Cohere's,
    OLMo's); otherwise it is an RMSNorm. Its effective weight and bias come from applying it to probes; its
    eps from its ``eps`` / ``variance_epsilon`` attribute, or, for a module without one, from two probes.
    """
    weight = getattr(module, "weight", None)
    if isinstance(module, nn.LayerNorm):
        d = module.normalized_shape[-1]
        w = module.weight.detach() if module.weight is not None else torch.ones(d)
        b = module.bias.detach() if module.bias is not None else None
        return FrozenNorm(center=True, weight=w, bias=b, eps=float(module.eps))
    d = _width(module, weight)
    dtype = weight.dtype if isinstance(weight, torch.Tensor) else torch.float32
    device = weight.device if isinstance(weight, torch.Tensor) else torch.device("cpu")

    def f(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module.forward(x.to(device=device, dtype=dtype)).float().cpu()  # .forward: no hooks fire

    ones = torch.ones(d)
    at_one = f(ones)
    eps = _eps(module)
    if torch.equal(at_one, f(-ones)):  # centring: any constant normalises to 0, leaving the bias (RMSNorm: -f(1))
        x = _zero_mean_probe(d)
        if eps is None:
            eps = _probed_eps(f, x, at_one)
        w_eff = (f(x) - at_one) / x * (float(x.pow(2).mean()) + eps) ** 0.5
        bias = at_one if bool(at_one.any()) else None
        return FrozenNorm(center=True, weight=w_eff.to(device), bias=None if bias is None else bias.to(device), eps=eps)
    if eps is None:
        raise TypeError(f"{type(module).__name__} has no eps attribute; cannot treat it as a norm")
    # RMSNorm(1) = 1 * rsqrt(1 + eps) * w_eff
    w_eff = at_one * (1.0 + eps) ** 0.5
    return FrozenNorm(center=False, weight=w_eff.to(device), bias=None, eps=eps)
