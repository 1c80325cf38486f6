"""A mean with its 95% bootstrap interval, and how a study turns one into a sentence."""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Literal

import torch
from jaxtyping import Float

from circuitscope.evals import bootstrap_ci

__all__ = ["Direction", "Estimate", "ScoresJson", "difference", "estimate", "scores_json"]

Direction = Literal["lower", "higher", "no detectable difference"]
"""What an interval says about a difference: below zero, above zero, or it contains zero."""


@dataclass(frozen=True)
class Estimate:
    """The mean of per-item values with its 95% percentile-bootstrap interval."""

    mean: float
    low: float
    """2.5th percentile of the resampled means."""
    high: float
    """97.5th percentile of the resampled means."""
    n: int
    """How many items the mean is over."""

    @property
    def direction(self) -> Direction:
        """For a difference: ``lower`` if the whole interval is below zero, ``higher`` if above, otherwise neither."""
        if self.high < 0:
            return "lower"
        if self.low > 0:
            return "higher"
        return "no detectable difference"

    def text(self, digits: int = 3) -> str:
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci95": [self.low, self.high], "n": self.n}


def scores_json(score: object) -> dict[str, Any]:
    """A result dataclass's fields by name, in their order, each :class:`Estimate` as its ``to_json()``."""
    assert is_dataclass(score) and not isinstance(score, type)
    values = {f.name: getattr(score, f.name) for f in fields(score)}
    return {name: v.to_json() if isinstance(v, Estimate) else v for name, v in values.items()}


class ScoresJson:
    """Gives a result dataclass whose fields are estimates, numbers and text its ``to_json()`` (:func:`scores_json`)."""

    def to_json(self) -> dict[str, Any]:
        return scores_json(self)


def estimate(values: Float[torch.Tensor, " n"], n_boot: int, seed: int) -> Estimate:
    """The mean of ``values`` and its interval (pass per-item differences for a paired comparison)."""
    low, high = bootstrap_ci(values.float(), n_boot, seed)
    return Estimate(float(values.float().mean()), low, high, int(values.shape[0]))


def difference(a: Float[torch.Tensor, " n"], b: Float[torch.Tensor, " m"], n_boot: int, seed: int) -> Estimate:
    """mean(a) - mean(b) for two independent groups, each resampled on its own (an unpaired interval)."""
    g = torch.Generator().manual_seed(seed)
    a, b = a.float(), b.float()
    diffs = a[torch.randint(0, len(a), (n_boot, len(a)), generator=g)].mean(1)
    diffs = diffs - b[torch.randint(0, len(b), (n_boot, len(b)), generator=g)].mean(1)
    return Estimate(
        float(a.mean() - b.mean()), float(diffs.quantile(0.025)), float(diffs.quantile(0.975)), len(a) + len(b)
    )
