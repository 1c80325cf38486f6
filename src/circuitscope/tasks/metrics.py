"""Metrics over answer logits: logit difference, answer probability, KL to the clean run.

Every metric maps logits at the answer positions, ``[batch, d_vocab]``, to one value per
pair, ``[batch]``. Higher means "more like the clean run" for ``logit_diff`` and ``prob``;
for ``kl`` lower does, so normalised scores flip it (0 at corrupted, 1 at clean).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from jaxtyping import Float, Int

__all__ = ["METRICS", "MetricName", "check_normalisable", "evaluate_metric", "normalise"]

MetricName = Literal["logit_diff", "prob", "kl"]
METRICS: tuple[str, ...] = ("logit_diff", "prob", "kl")
_REL_TOL, _ABS_TOL = 1e-5, 1e-6
"""Clean and corrupted scores this close (relative, absolute) count as equal: float32 noise, not a signal."""


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
            raise _task_error("the kl metric needs the clean run's logits: pass clean_logits")
        clean_logp = clean_logits.float().log_softmax(-1)
        return (clean_logp.exp() * (clean_logp - logits.log_softmax(-1))).sum(-1)
    raise _task_error(f"unknown metric {name!r}; choose one of {METRICS}")


def _task_error(message: str) -> Exception:
    from circuitscope.tasks.task import TaskError  # task.py imports this module

    return TaskError(message)


def check_normalisable(clean: float, corrupted: float, metric: str = "the metric") -> None:
    """Refuse a clean and corrupted score that are equal within float tolerance (nothing to normalise by).

    Analyses that report normalised scores call this as soon as both scores are known, before any sweep.
    """
    if not (math.isfinite(clean) and math.isfinite(corrupted)):
        raise _task_error(
            f"the clean ({clean}) or corrupted ({corrupted}) run scores a non-finite {metric}; "
            "check the model's outputs and the task's answers"
        )
    if math.isclose(clean, corrupted, rel_tol=_REL_TOL, abs_tol=_ABS_TOL):
        raise _task_error(
            f"the clean and corrupted runs score the same on {metric} ({clean:.6g} vs {corrupted:.6g}), so a "
            "normalised score (which divides by their difference) is undefined; check the task's corruption: "
            "the corrupted prompts must change what the model predicts (or use another metric)"
        )


def normalise(value: torch.Tensor, clean: float, corrupted: float) -> torch.Tensor:
    """0 at the corrupted run's value, 1 at the clean run's."""
    check_normalisable(clean, corrupted)
    return (value - corrupted) / (clean - corrupted)
