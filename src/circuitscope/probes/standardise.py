"""Per-feature standardisation of activations, fit on a training set: what every probe here trains on."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float

__all__ = ["Standardisation"]

MIN_STD = 1e-6
"""Floor of a feature's standard deviation, so a constant feature is not divided by zero."""


@dataclass(frozen=True)
class Standardisation:
    """``(x - mean) / std`` with each feature's statistics from a training set."""

    mean: Float[torch.Tensor, " d"]
    """Feature means of the training set."""
    std: Float[torch.Tensor, " d"]
    """Feature standard deviations of the training set (population, floored at ``MIN_STD``)."""

    @staticmethod
    def fit(x: Float[torch.Tensor, "n d"]) -> Standardisation:
        """The statistics of the rows of ``x`` (in float32)."""
        x = x.float()
        return Standardisation(x.mean(0), x.std(0, unbiased=False).clamp_min(MIN_STD))

    def __call__(self, x: Float[torch.Tensor, "n d"]) -> Float[torch.Tensor, "n d"]:
        return (x.float() - self.mean) / self.std
