"""The IOI circuit before and after fine-tuning: found on each model, compared edge by edge, and the old
circuit's faithfulness on the new model, with 95% bootstrap intervals over the prompts.

Both circuits are found with :func:`~circuitscope.circuits.discover_circuit` on the same IOI prompts:
the one before keeps the fewest top edges reaching the target faithfulness, the one after the same
number of its own top edges, so their Jaccard overlap compares circuits of one size. Faithfulness is
normalized, ``(metric with the circuit - metric with every edge ablated) / (full - ablated)``; its
interval resamples prompts with the denominator held at its all-prompt value (the per-prompt terms
``(v_i - ablated_i) / (full - ablated)`` average to it exactly).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch

from circuitscope.circuits import Circuit, CircuitRunner, discover_circuit
from circuitscope.circuits.discover import Method
from circuitscope.circuits.reference import Ablation
from circuitscope.engine.batching import batch_slices
from circuitscope.progress import OnProgress
from circuitscope.studies.estimates import Estimate, estimate
from circuitscope.tasks import Task
from circuitscope.tasks.metrics import evaluate_metric

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["CircuitComparison", "compare_circuits", "jaccard", "per_prompt_faithfulness"]


def jaccard(a: torch.Tensor, b: torch.Tensor) -> float:
    """``|a & b| / |a | b|`` of two edge masks (1 when both are empty)."""
    union = int((a.bool() | b.bool()).sum())
    return int((a.bool() & b.bool()).sum()) / union if union else 1.0


def _metric_per_prompt(runner: CircuitRunner, logits: list[torch.Tensor]) -> torch.Tensor:
    task, out = runner.task, []
    for rows, lg, clean in zip(batch_slices(len(task), runner.batch_size), logits, runner.clean_logits, strict=True):
        dev = lg.device
        values = evaluate_metric(runner.metric, lg, task.correct[rows].to(dev), task.incorrect[rows].to(dev), clean)
        out.append(values.double().cpu())
    return torch.cat(out)


def per_prompt_faithfulness(runner: CircuitRunner, edges: torch.Tensor) -> torch.Tensor:
    """Each prompt's term of the normalized faithfulness of ``edges``: their mean is ``runner.faithfulness(edges)``."""
    kept = _metric_per_prompt(runner, runner.logits(edges))
    ablated = _metric_per_prompt(runner, runner.logits(torch.zeros_like(runner.graph.allowed)))
    full = _metric_per_prompt(runner, runner.clean_logits)
    span = float(full.mean() - ablated.mean())
    return (kept - ablated) / span if abs(span) > 1e-12 else torch.full_like(kept, float("nan"))


def _score_correlation(a: Circuit, b: Circuit) -> float:
    """Pearson correlation of the two models' scores over every edge of the graph."""
    x, y = a.scores.flatten().double(), b.scores.flatten().double()
    keep = torch.isfinite(x) & torch.isfinite(y)
    x, y = x[keep] - x[keep].mean(), y[keep] - y[keep].mean()
    denominator = float(x.norm() * y.norm())
    return float((x * y).sum()) / denominator if denominator > 0 else 1.0


@dataclass(frozen=True)
class CircuitComparison:
    """The IOI circuit before and after, and how the old one fares on the new model."""

    before: Circuit
    """The circuit found on the model before."""
    after: Circuit
    """The circuit of the same size found on the model after."""
    jaccard: float
    """Edges in both circuits over edges in either."""
    score_correlation: float
    """Pearson correlation of the edge scores before and after, over every edge of the graph."""
    faithfulness_before: Estimate
    """The old circuit's normalized faithfulness on the model before."""
    faithfulness_after: Estimate
    """The old circuit's normalized faithfulness on the model after."""
    faithfulness_change: Estimate
    """Paired per-prompt difference, after minus before."""
    new_faithfulness: Estimate
    """The new circuit's normalized faithfulness on the model after."""
    logit_diff_before: Estimate
    """The full model's IOI metric (the task's, e.g. logit difference) before."""
    logit_diff_change: Estimate
    """Paired per-prompt change of that metric, after minus before."""

    @property
    def retained(self) -> float:
        """Old circuit's faithfulness after over before (1: it explains the new model as well as the old)."""
        before = self.faithfulness_before.mean
        return self.faithfulness_after.mean / before if before != 0 else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {
            "n_edges": self.before.n_edges,
            "jaccard": self.jaccard,
            "score_correlation": self.score_correlation,
            "faithfulness_before": self.faithfulness_before.to_json(),
            "faithfulness_after": self.faithfulness_after.to_json(),
            "faithfulness_change": self.faithfulness_change.to_json(),
            "faithfulness_retained": self.retained,
            "new_circuit_faithfulness": self.new_faithfulness.to_json(),
            "metric_before": self.logit_diff_before.to_json(),
            "metric_change": self.logit_diff_change.to_json(),
            "edges_only_before": int((self.before.edges & ~self.after.edges).sum()),
            "edges_only_after": int((self.after.edges & ~self.before.edges).sum()),
        }


# Keyword options one per line, each its own documented knob: alike in shape to other entry points, on purpose.
def compare_circuits(
    before: HookedModel,
    after: HookedModel,
    task: Task,
    *,
    method: Method,
    target: float,
    batch_size: int,
    n_boot: int,
    seed: int,
    on_progress: OnProgress | None = None,
) -> CircuitComparison:
    """Find ``task``'s circuit on both models and compare them (see the module docstring)."""
    found = discover_circuit(
        before, task, method, target=target, batch_size=batch_size, seed=seed, model_name="before",
        on_progress=on_progress,
    ).circuit  # fmt: skip
    found_after = discover_circuit(
        after, task, method, n_edges=found.n_edges, batch_size=batch_size, seed=seed, model_name="after",
        curve=False, on_progress=on_progress,
    ).circuit  # fmt: skip
    ablation = cast(Ablation, found.ablation)
    run_before = CircuitRunner(before, task, ablation=ablation, batch_size=batch_size, seed=seed)
    run_after = CircuitRunner(after, task, ablation=ablation, batch_size=batch_size, seed=seed)
    f_before = per_prompt_faithfulness(run_before, found.edges)
    f_after = per_prompt_faithfulness(run_after, found.edges)
    f_new = per_prompt_faithfulness(run_after, found_after.edges)
    m_before = _metric_per_prompt(run_before, run_before.clean_logits)
    m_after = _metric_per_prompt(run_after, run_after.clean_logits)
    return CircuitComparison(
        before=found,
        after=found_after,
        jaccard=jaccard(found.edges, found_after.edges),
        score_correlation=_score_correlation(found, found_after),
        faithfulness_before=estimate(f_before, n_boot, seed),
        faithfulness_after=estimate(f_after, n_boot, seed),
        faithfulness_change=estimate(f_after - f_before, n_boot, seed),
        new_faithfulness=estimate(f_new, n_boot, seed),
        logit_diff_before=estimate(m_before, n_boot, seed),
        logit_diff_change=estimate(m_after - m_before, n_boot, seed),
    )
