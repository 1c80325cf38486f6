"""The strongest cells of a ``[row, column]`` score tensor: what every ``top(k)`` of the analyses lists."""

from __future__ import annotations

import torch
from jaxtyping import Float

__all__ = ["top_cells"]


def top_cells(scores: Float[torch.Tensor, "row col"], k: int, *, by_abs: bool = False) -> list[tuple[int, int, float]]:
    """``(row, column, score)`` of the ``k`` highest cells (by ``|score|`` with ``by_abs``), strongest first.

    Fewer than ``k`` when the tensor is smaller; the scores keep their sign.
    """
    flat = scores.flatten()
    index = (flat.abs() if by_abs else flat).topk(min(k, flat.numel())).indices
    n_cols = scores.shape[1]
    return [(int(i) // n_cols, int(i) % n_cols, float(flat[i])) for i in index]
