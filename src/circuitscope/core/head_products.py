"""Each head's write through the output projection, computed once when ``hook_result`` is active.

``attn.hook_result`` needs every head's product ``z_h @ W_O[h]`` ([batch pos head d_model]). Those
products sum to the output projection's own output, so computing both would repeat the projection's
multiply-adds. While ``hook_result`` is active, :func:`summed_output_site` shadows the output
projection's ``forward`` (an instance attribute, removed with the site) by one that computes the
per-head products from its input (the possibly hooked ``hook_z``, flattened), keeps them in a
:class:`HeadProducts`, and returns their sum over heads plus the bias, added once.

Summation order: the projection's GEMM sums its ``head * d_head`` products in one reduction; the
shadowing forward sums each head's ``d_head`` products, then the heads. Outputs therefore match the
plain forward to float32 rounding (the parity tests' tolerance), not bit for bit, while
``hook_result`` is active; with it idle the projection runs untouched.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from circuitscope.core.config import ModelConfig
from circuitscope.core.sites import Site

__all__ = ["HeadProducts", "summed_output_site"]


class HeadProducts:
    """The per-head products of one layer's last forward pass (``None`` outside one)."""

    __slots__ = ("raw",)

    def __init__(self) -> None:
        self.raw: torch.Tensor | None = None
        """``z_h @ W_O[h]`` (times the residual multiplier, where one scales the stream), [... head d_model]."""


class _Handle:
    def __init__(self, module: nn.Module) -> None:
        self._module = module

    def remove(self) -> None:
        self._module.__dict__.pop("forward", None)


def summed_output_site(o: nn.Module, cfg: ModelConfig, conv1d: bool, products: HeadProducts) -> Site:
    """A site that makes ``o`` (the attention's output projection) the sum of its heads' products."""
    from circuitscope.core.weights import head_out_weights

    h, d, k = cfg.n_heads, cfg.d_head, cfg.residual_multiplier

    def forward(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        w_o, _ = head_out_weights(o, cfg, conv1d)  # read each pass: weights may have been edited
        z = x.view(*x.shape[:-1], h, d)
        raw = torch.einsum("...hd,hdm->...hm", z, w_o.to(z.dtype))
        products.raw = raw
        out = raw.sum(-2)
        if k != 1.0:  # head_out_weights scaled W_O by the multiplier; the projection itself is unscaled
            out = out / k
        bias = getattr(o, "bias", None)
        return out + bias if isinstance(bias, torch.Tensor) else out

    def install() -> _Handle:
        o.__dict__["forward"] = forward  # nn.Module looks instance attributes up before class methods
        return _Handle(o)

    return Site(install)
