"""Batched loops: the slices of a batch loop, lists cut into groups, a function applied batch by batch.

Every batched loop of circuitscope goes through :func:`batch_slices`, so the knob is one:
``batch_size``, the number of rows of one forward pass (what a row is depends on the analysis:
a prompt, a prompt with one patch, a sequence with one head ablated; each function says).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

__all__ = ["apply_in_batches", "batch_slices", "batched"]

T = TypeVar("T")


def batch_slices(n: int, batch_size: int, start: int = 0) -> list[slice]:
    """``slice(start, start + b), slice(start + b, start + 2b), ...`` covering ``range(start, n)`` in order;
    the last one may be shorter.

    An empty range gives no slice; ``batch_size`` must be at least 1 (a ValueError otherwise).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [slice(first, min(first + batch_size, n)) for first in range(start, n, batch_size)]


def batched(items: Sequence[T], batch_size: int) -> list[list[T]]:
    """``items`` cut into consecutive lists of at most ``batch_size`` (the work of one pass each)."""
    return [list(items[s]) for s in batch_slices(len(items), batch_size)]


def apply_in_batches(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``fn`` applied to ``x`` ``batch_size`` rows (dim 0) at a time, the outputs concatenated on dim 0."""
    return torch.cat([fn(x[s]) for s in batch_slices(x.shape[0], batch_size)])
