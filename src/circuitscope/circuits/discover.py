"""One entry point for circuit discovery: score edges (EAP, EAP-IG) or prune them (ACDC)."""

from __future__ import annotations

from typing import Any, Literal, get_args

from circuitscope.circuits._acdc import acdc
from circuitscope.circuits._eap import EdgeScores, edge_scores
from circuitscope.circuits._faithfulness import CircuitRunner, FaithfulnessCurve, default_counts, faithfulness_curve
from circuitscope.circuits.circuit import Circuit
from circuitscope.circuits.graph import CircuitError
from circuitscope.circuits.reference import Ablation, check_ablation
from circuitscope.core.hooked_model import HookedModel
from circuitscope.progress import OnProgress
from circuitscope.tasks.task import Task

__all__ = ["METHODS", "Discovery", "Method", "discover_circuit"]

Method = Literal["eap", "eap-ig", "acdc"]
METHODS: tuple[str, ...] = get_args(Method)


class Discovery:
    """A discovered circuit, the edge scores behind it, and the faithfulness curve of the top-n edges."""

    def __init__(self, circuit: Circuit, scores: EdgeScores | None, curve: FaithfulnessCurve | None) -> None:
        self.circuit = circuit
        """The chosen edges."""
        self.scores = scores
        """Every edge's score (EAP / EAP-IG; None for ACDC, whose scores are in the circuit)."""
        self.curve = curve
        """Faithfulness against the number of top edges kept (EAP / EAP-IG)."""


def discover_circuit(
    model: HookedModel,
    task: Task,
    method: Method = "eap-ig",
    *,
    steps: int = 5,
    ablation: Ablation = "corrupted",
    n_edges: int | None = None,
    target: float = 0.8,
    threshold: float = 0.01,
    batch_size: int = 16,
    seed: int = 0,
    model_name: str = "model",
    curve: bool = True,
    on_progress: OnProgress | None = None,
) -> Discovery:
    """Find a circuit for ``task``.

    ``eap`` / ``eap-ig`` score every edge, then keep the ``n_edges`` strongest, or (by default) the
    fewest top edges whose normalized faithfulness reaches ``target`` on the curve (all edges if
    none does). ``acdc`` prunes against ``threshold`` (KL criterion). ``on_progress(stage, done, total)``
    is called when each stage starts (``done`` 0) and as its work completes: ``acdc`` counts edges,
    ``eap`` / ``eap-ig`` batches of prompts x gradient steps, ``faithfulness`` points of the curve
    (default: a progress bar per stage on stderr).
    """
    if method not in METHODS:
        raise CircuitError(f"unknown circuit discovery method {method!r}; choose one of {', '.join(METHODS)}")
    check_ablation(ablation)
    if not 0 < target <= 1.5:
        raise CircuitError(f"target faithfulness must be in (0, 1.5], got {target}")
    if method == "acdc":
        circuit = acdc(
            model, task, threshold, ablation=ablation, batch_size=batch_size, seed=seed, model_name=model_name,
            on_progress=on_progress,
        )  # fmt: skip
        return Discovery(circuit, None, None)
    k = 1 if method == "eap" else steps
    scores = edge_scores(
        model, task, steps=k, ablation=ablation, batch_size=batch_size, seed=seed, on_progress=on_progress
    )
    n_total = scores.graph.n_edges
    if n_edges is not None and not 0 <= n_edges <= n_total:
        raise CircuitError(f"n_edges must lie in [0, {n_total}] (the graph's edges), got {n_edges}")
    info: dict[str, Any] = {"seconds": scores.seconds, "clean_value": scores.clean_value, "target": target}
    runner = CircuitRunner(model, task, ablation=ablation, metric=scores.metric, batch_size=batch_size, seed=seed)
    chosen, curve_result, info["faithfulness"] = _top_edges(
        model, task, scores, runner, n_edges=n_edges, target=target, curve=curve, on_progress=on_progress
    )
    circuit = Circuit.found(
        model, task, scores.top_mask(chosen), scores.scores, graph=scores.graph, model_name=model_name,
        method=scores.method, ablation=ablation, steps=scores.steps, info=info,
    )  # fmt: skip
    return Discovery(circuit, scores, curve_result)


def _top_edges(
    model: HookedModel,
    task: Task,
    scores: EdgeScores,
    runner: CircuitRunner,
    *,
    n_edges: int | None,
    target: float,
    curve: bool,
    on_progress: OnProgress | None,
) -> tuple[int, FaithfulnessCurve | None, dict[str, Any]]:
    """How many top edges the circuit keeps (``n_edges``, or the fewest reaching ``target`` on the curve), the
    curve when it is drawn (``curve``, or needed to choose), and the faithfulness of the chosen edges."""
    if not (curve or n_edges is None):
        return n_edges, None, runner.faithfulness(scores.top_mask(n_edges)).to_dict()
    n_total = scores.graph.n_edges
    counts = default_counts(n_total)
    if n_edges is not None:
        counts = sorted({*counts, n_edges})
    curve_result = faithfulness_curve(model, task, scores, counts=counts, runner=runner, on_progress=on_progress)
    chosen = n_edges
    if chosen is None:
        reached = curve_result.smallest_reaching(target)
        chosen = n_total if reached is None else reached
    return chosen, curve_result, next(p for p in curve_result.points if p.n_edges == chosen).to_dict()
