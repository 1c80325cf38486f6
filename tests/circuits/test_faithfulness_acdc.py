"""Faithfulness (every edge = the model, no edge = the ablated model), its curve, and ACDC's pruning bound."""

from __future__ import annotations

import pytest
import torch

from circuitscope import HookedModel
from circuitscope.circuits import (
    CircuitError,
    CircuitRunner,
    acdc,
    discover_circuit,
    eap,
    faithfulness,
    faithfulness_curve,
    graph_of,
)
from circuitscope.core.fingerprint import model_fingerprint
from circuitscope.report.circuit import plot_curve
from circuitscope.tasks import Task, evaluate_metric
from tests.tiny_models import TinyModels, random_task


def _task(n: int = 6, seq: int = 7) -> Task:
    return random_task(n, seq, seed=1, corrupt=(1, 4), name="t")


def _metric(model: HookedModel, task: Task, tokens: torch.Tensor) -> float:
    with torch.no_grad():
        logits = model(tokens)[torch.arange(len(task)), task.answer_pos]
    return float(evaluate_metric("logit_diff", logits, task.correct, task.incorrect).mean())


@pytest.mark.parametrize("family", ["gpt2", "llama_gqa", "gpt_neox"])
@pytest.mark.parametrize("ablation", ["corrupted", "mean", "zero"])
def test_all_edges_are_the_model_and_no_edges_the_ablated_value(tiny: TinyModels, family: str, ablation: str) -> None:
    model = tiny.hooked(family)
    task = _task()
    graph = graph_of(model)
    full = faithfulness(model, task, graph.allowed, ablation=ablation, batch_size=4)  # type: ignore[arg-type]  # a parametrized str for the Literal option
    assert full.value == pytest.approx(_metric(model, task, task.clean_tokens), abs=1e-5)
    assert full.fraction == pytest.approx(1.0) and full.normalized == pytest.approx(1.0)
    none = faithfulness(model, task, torch.zeros_like(graph.allowed), ablation=ablation)  # type: ignore[arg-type]  # a parametrized str for the Literal option
    assert none.value == pytest.approx(none.ablated, abs=1e-6) and none.normalized == pytest.approx(0.0, abs=1e-5)
    if ablation == "corrupted":
        assert none.value == pytest.approx(_metric(model, task, task.corrupted_tokens), abs=1e-5)


def test_curve_runs_from_ablated_to_full_and_picks_the_top_edges(tiny: TinyModels) -> None:
    model = tiny.hooked("llama_gqa")
    task = _task()
    scores = eap(model, task)
    runner = CircuitRunner(model, task)
    curve = faithfulness_curve(model, task, scores, counts=[0, 3, scores.graph.n_edges], runner=runner)
    assert curve.n_edges == [0, 3, scores.graph.n_edges]
    assert curve.normalized[0] == pytest.approx(0.0, abs=1e-5) and curve.normalized[-1] == pytest.approx(1.0)
    assert curve.points[1].value == pytest.approx(runner.run(scores.top_mask(3)))
    assert curve.smallest_reaching(0.99) == scores.graph.n_edges or curve.smallest_reaching(0.99) == 3
    assert len(list(plot_curve(curve, chosen=3).data)) == 1
    with pytest.raises(CircuitError, match="edge counts"):
        faithfulness_curve(model, task, scores, counts=[-1], runner=runner)


def test_acdc_damage_is_bounded_by_threshold_times_removals(tiny: TinyModels) -> None:
    """Each accepted removal raises the KL to the full model by less than the threshold, so the final circuit's KL
    is below threshold x (edges removed after a try)."""
    model = tiny.hooked("llama_mqa")
    task = _task(n=4).with_metric("kl")
    tau = 0.002
    circuit = acdc(model, task, tau)
    graph = circuit.graph
    removed_after_try = int((~circuit.edges & graph.allowed & ~circuit.scores.isnan()).sum())
    runner = CircuitRunner(model, task)
    kl = runner.run(circuit.edges)
    assert 0 < circuit.n_edges < graph.n_edges
    assert kl <= tau * removed_after_try + 1e-6
    tried = ~circuit.scores.isnan()
    kept_tried = circuit.edges & tried
    assert bool((circuit.scores[kept_tried] >= tau).all())  # kept edges did damage when tried
    assert circuit.info["edges_tried"] == int(tried.sum())
    assert circuit.task == {"name": task.name, "n_prompts": 4, "metric": "kl"}  # the provenance Circuit.found records
    assert circuit.fingerprint == model_fingerprint(model) and circuit.method == "acdc"
    everything = acdc(model, task, 1e9)
    assert everything.n_edges == 0


def test_discover_circuit_methods_and_bad_names(tiny: TinyModels) -> None:
    model = tiny.hooked("gpt2")
    task = _task()
    found = discover_circuit(model, task, "eap", target=0.5)
    assert found.curve is not None and found.scores is not None
    chosen = found.circuit.n_edges
    point = next(p for p in found.curve.points if p.n_edges == chosen)
    assert point.normalized >= 0.5 or chosen == found.circuit.graph.n_edges
    smaller = [p for p in found.curve.points if p.n_edges < chosen]
    assert all(p.normalized < 0.5 for p in smaller)
    fixed = discover_circuit(model, task, "eap-ig", steps=2, n_edges=7, curve=False)
    assert fixed.circuit.n_edges == 7 and fixed.circuit.method == "eap-ig" and fixed.circuit.steps == 2
    assert fixed.circuit.task == {"name": task.name, "n_prompts": len(task), "metric": task.metric}
    assert fixed.circuit.fingerprint == model_fingerprint(model)
    with pytest.raises(CircuitError, match="unknown circuit discovery method 'pathfinder'"):
        discover_circuit(model, task, "pathfinder")  # type: ignore[arg-type]  # the unknown method under test
