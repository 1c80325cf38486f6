"""Metrics over answer logits: logit difference, answer probability, KL to the clean run.

Every metric maps logits at the answer positions, ``[batch, d_vocab]``, to one value per
pair, ``[batch]``. Higher means "more like the clean run" for ``logit_diff`` and ``prob``;
for ``kl`` lower does, so normalised scores flip it (0 at corrupted, 1 at clean).
"""

from __future__ import annotations

from typing import Literal

import torch
from jaxtyping import Float, Int

__all__ = ["METRICS", "MetricName", "evaluate_metric", "normalise"]

MetricName = Literal["logit_diff", "prob", "kl"]
METRICS: tuple[str, ...] = ("logit_diff", "prob", "kl")


def evaluate_metric(
    name: MetricName,
    logits: Float[torch.Tensor, "batch d_vocab"],
    correct: Int[torch.Tensor, " batch"],
    incorrect: Int[torch.Tensor, " batch"],
    clean_logits: Float[torch.Tensor, "batch d_vocab"] | None = None,
) -> Float[torch.Tensor, " batch"]:
    """The metric per pair (differentiable)."""
    logits = logits.float()
    rows = torch.arange(logits.shape[0], device=logits.device)
    if name == "logit_diff":
        return logits[rows, correct] - logits[rows, incorrect]
    if name == "prob":
        return logits.softmax(-1)[rows, correct]
    if name == "kl":
        if clean_logits is None:
            raise ValueError("the kl metric needs the clean run's logits")
        clean_logp = clean_logits.float().log_softmax(-1)
        return (clean_logp.exp() * (clean_logp - logits.log_softmax(-1))).sum(-1)
    raise ValueError(f"unknown metric {name!r}; choose one of {METRICS}")


def normalise(value: torch.Tensor, clean: float, corrupted: float) -> torch.Tensor:
    """0 at the corrupted run's value, 1 at the clean run's."""
    span = clean - corrupted
    if abs(span) < 1e-12:
        raise ValueError(
            "the clean and corrupted runs score the same on this metric, so a normalised score is undefined; "
            "check the task's corruption"
        )
    return (value - corrupted) / span
