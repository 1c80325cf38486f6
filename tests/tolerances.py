"""Tolerances derived from float32 rounding, for checks where two computations differ only in summation order."""

from __future__ import annotations

import torch

__all__ = ["EPS32", "assert_sum_close"]

EPS32 = torch.finfo(torch.float32).eps


def assert_sum_close(parts: torch.Tensor, total: torch.Tensor, terms: int | None = None) -> None:
    """``parts.sum(0)`` equals ``total`` up to float32 summation error, element by element.

    Summing ``n`` float32 numbers in any order is off by at most about ``n * eps * sum(|x_i|)``
    (the standard bound is half that). ``terms`` is ``n`` when ``total`` came from a longer sum
    than ``len(parts)``, e.g. an output projection over ``n_heads * d_head`` products.
    """
    n = len(parts) if terms is None else terms
    bound = n * EPS32 * parts.abs().sum(0)
    error = (parts.sum(0) - total).abs()
    worst = float((error / bound.clamp_min(torch.finfo(torch.float32).tiny)).max())
    assert bool((error <= bound).all()), f"max error {float(error.max()):.3g} is {worst:.3g}x the float32 bound"
