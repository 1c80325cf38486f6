"""Faithfulness: run only the circuit (every other edge ablated at its receiver) and measure the metric.

For a set of kept edges, every edge outside it is ablated: its receiver reads the ablated output
of the sender (see :mod:`circuitscope.circuits.reference`: corrupted, mean, resample or zero)
while the kept edges carry the sender's output in this run. The result reports the mean metric
of that run beside the full model's (every edge kept) and the ablated model's (no edge kept):

``fraction``    circuit / full
``normalized``  (circuit - ablated) / (full - ablated): 1 when the circuit does all the model does, 0 when
                it does no more than the ablated model

With every edge kept the run is the model itself (``fraction = normalized = 1``); with none,
every receiver reads the ablated run's residual stream, so the metric is the ablated value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Bool

from circuitscope.circuits.graph import CircuitError, Graph
from circuitscope.circuits.intervene import EdgeRun, graph_of
from circuitscope.circuits.reference import Ablation, reference_outputs
from circuitscope.core.hooked_model import HookedModel
from circuitscope.engine.batching import batch_slices
from circuitscope.progress import SILENT, OnProgress, track
from circuitscope.tasks.metrics import MetricName, evaluate_metric
from circuitscope.tasks.task import Task

if TYPE_CHECKING:
    from circuitscope.circuits._eap import EdgeScores
    from circuitscope.circuits.circuit import Circuit

__all__ = ["CircuitRunner", "Faithfulness", "FaithfulnessCurve", "faithfulness", "faithfulness_curve"]


@dataclass(frozen=True)
class Faithfulness:
    """The metric of one circuit against the full and the ablated model."""

    n_edges: int
    """Edges kept."""
    value: float
    """Mean metric with only the circuit's edges."""
    full: float
    """Mean metric of the full model."""
    ablated: float
    """Mean metric with every edge ablated."""
    metric: str
    """Metric name."""
    ablation: str
    """What ablated senders output."""

    @property
    def fraction(self) -> float:
        """``value / full``."""
        return self.value / self.full if self.full != 0 else math.nan

    @property
    def normalized(self) -> float:
        """``(value - ablated) / (full - ablated)``."""
        span = self.full - self.ablated
        return (self.value - self.ablated) / span if abs(span) > 1e-12 else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_edges": self.n_edges, "value": self.value, "full": self.full, "ablated": self.ablated,
            "fraction": self.fraction, "normalized": self.normalized, "metric": self.metric, "ablation": self.ablation,
        }  # fmt: skip


class CircuitRunner:
    """Runs a task with chosen edges ablated; the ablated outputs are computed once."""

    # Keyword options one per line, each its own documented knob: alike in shape to other entry points, on purpose.
    def __init__(
        self,
        model: HookedModel,
        task: Task,
        *,
        ablation: Ablation = "corrupted",
        metric: MetricName | None = None,
        batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        if batch_size < 1:
            raise CircuitError(f"batch_size must be at least 1, got {batch_size}")
        self.model, self.task, self.ablation, self.batch_size = model, task, ablation, batch_size
        self.metric: MetricName = metric or task.metric
        self.graph: Graph = graph_of(model)
        self.reference = reference_outputs(
            model, self.graph, task, ablation, batch_size=batch_size, seed=seed, on_progress=SILENT
        )
        self.clean_logits: list[torch.Tensor] = []
        with torch.no_grad():
            for rows in self._batches():
                tokens = task.clean_tokens[rows].to(model.device)
                run = EdgeRun(model, self.graph, *tokens.shape)
                self.clean_logits.append(run.answer_logits(tokens, task.answer_pos[rows].to(model.device)))
        self.full = self._mean(self.clean_logits)
        self.ablated = self.run(torch.zeros_like(self.graph.allowed))

    def _batches(self) -> list[slice]:
        return batch_slices(len(self.task), self.batch_size)

    def _mean(self, logits: list[torch.Tensor]) -> float:
        total = 0.0
        for rows, lg, clean in zip(self._batches(), logits, self.clean_logits, strict=True):
            dev = lg.device
            values = evaluate_metric(
                self.metric, lg, self.task.correct[rows].to(dev), self.task.incorrect[rows].to(dev), clean
            )
            total += float(values.double().sum())
        return total / len(self.task)

    def logits(self, edges: Bool[torch.Tensor, "sender receiver"]) -> list[torch.Tensor]:
        """Answer logits per batch with only ``edges`` kept."""
        if tuple(edges.shape) != tuple(self.graph.allowed.shape):
            raise CircuitError(f"edges must be [sender, receiver] = {tuple(self.graph.allowed.shape)}")
        coeff = (self.graph.allowed & ~edges.bool()).float()
        out = []
        with torch.no_grad():
            for rows in self._batches():
                tokens = self.task.clean_tokens[rows].to(self.model.device)
                run = EdgeRun(self.model, self.graph, *tokens.shape, coeff=coeff, ablated=self.reference[:, rows])
                out.append(run.answer_logits(tokens, self.task.answer_pos[rows].to(self.model.device)))
        return out

    def run(self, edges: Bool[torch.Tensor, "sender receiver"]) -> float:
        """Mean metric with only ``edges`` kept."""
        return self._mean(self.logits(edges))

    def faithfulness(self, edges: Bool[torch.Tensor, "sender receiver"]) -> Faithfulness:
        return Faithfulness(
            n_edges=int((edges.bool() & self.graph.allowed).sum()),
            value=self.run(edges),
            full=self.full,
            ablated=self.ablated,
            metric=self.metric,
            ablation=self.ablation,
        )


def faithfulness(
    model: HookedModel,
    task: Task,
    circuit: Circuit | Bool[torch.Tensor, "sender receiver"],
    *,
    ablation: Ablation | None = None,
    metric: MetricName | None = None,
    batch_size: int = 32,
    seed: int = 0,
) -> Faithfulness:
    """The metric with only the circuit's edges kept, against the full and the fully ablated model.

    ``ablation`` defaults to the circuit's own (``mean`` for a bare edge mask).
    """
    from circuitscope.circuits.circuit import Circuit

    if isinstance(circuit, Circuit):
        circuit.check_model(model)
        edges, ablation = circuit.edges, ablation or circuit.ablation  # type: ignore[assignment]
    else:
        edges = circuit
    runner = CircuitRunner(model, task, ablation=ablation or "mean", metric=metric, batch_size=batch_size, seed=seed)
    return runner.faithfulness(edges)


@dataclass(frozen=True)
class FaithfulnessCurve:
    """Faithfulness of the top-n edges by score, for several n."""

    points: list[Faithfulness]
    """One point per edge count, in increasing order."""
    method: str
    """Method of the scores."""

    @property
    def n_edges(self) -> list[int]:
        return [p.n_edges for p in self.points]

    @property
    def normalized(self) -> list[float]:
        return [p.normalized for p in self.points]

    def smallest_reaching(self, target: float) -> int | None:
        """Fewest edges whose normalized faithfulness is at least ``target`` (None if none reaches it)."""
        for p in self.points:
            if p.normalized >= target:
                return p.n_edges
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "points": [p.to_dict() for p in self.points]}


def default_counts(n_edges: int, n_points: int = 12) -> list[int]:
    """0, then roughly geometric counts up to every edge."""
    counts = {0, n_edges}
    for i in range(n_points):
        counts.add(round(n_edges ** (i / (n_points - 1))))
    return sorted(c for c in counts if 0 <= c <= n_edges)


def faithfulness_curve(
    model: HookedModel,
    task: Task,
    scores: EdgeScores,
    *,
    counts: Sequence[int] | None = None,
    ablation: Ablation | None = None,
    batch_size: int = 32,
    seed: int = 0,
    on_progress: OnProgress | None = None,
    runner: CircuitRunner | None = None,
) -> FaithfulnessCurve:
    """Faithfulness of the ``n`` top-scoring edges (by ``|score|``) for each ``n`` in ``counts``.

    ``on_progress(stage, done, total)`` is told each point of the curve (stage ``faithfulness``; default: a bar).
    """
    if runner is None:
        runner = CircuitRunner(
            model, task, ablation=ablation or scores.ablation, metric=scores.metric,  # type: ignore[arg-type]
            batch_size=batch_size, seed=seed,
        )  # fmt: skip
    counts = default_counts(scores.graph.n_edges) if counts is None else sorted(set(counts))
    if any(c < 0 or c > scores.graph.n_edges for c in counts):
        raise CircuitError(f"edge counts must lie in [0, {scores.graph.n_edges}], got {list(counts)}")
    points = [runner.faithfulness(scores.top_mask(c)) for c in track(counts, "faithfulness", on_progress)]
    return FaithfulnessCurve(points=points, method=scores.method)
