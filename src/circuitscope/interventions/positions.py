"""Absolute positions across cached generation steps, for hook functions that edit some positions only."""

from __future__ import annotations

import torch

__all__ = ["PositionCounter"]


class PositionCounter:
    """The absolute position of ``x[:, 0]`` in each pass one hook function sees.

    A pass over several positions starts a sequence (position 0); a one-position pass continues
    the previous one, as cached generation feeds one new token per step. One counter per hook
    function, made fresh with it: its count is the function's only state.
    """

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = 0

    def offset(self, x: torch.Tensor) -> int:
        """Where ``x`` [batch, pos, ...] starts; counts its positions as seen."""
        offset = 0 if x.shape[1] > 1 else self._next
        self._next = offset + x.shape[1]
        return offset
