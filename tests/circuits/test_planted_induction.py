"""Circuit discovery finds a planted induction circuit in a hand-built 2-layer attention-only model."""

from __future__ import annotations

import pytest
import torch

from circuitscope.circuits import (
    CircuitError,
    CircuitRunner,
    acdc,
    discover_circuit,
    eap,
    eap_ig,
    graph_of,
    sender_outputs,
)
from tests.hand_models import induction_model, induction_task


@pytest.fixture(scope="module")
def planted():
    # attention soft enough (sharpness 4) for first-order methods to see the keys; see the saturated case below
    model, info = induction_model(sharpness=4.0)
    return model, info, induction_task(model, n=8, seq_len=10, seed=1)


def _planted_edges(info) -> set[str]:
    (pl, ph), (il, ih) = info.prev_head, info.induction_head
    prev, ind = f"a{pl}.h{ph}", f"a{il}.h{ih}"
    # the previous-token head reads the token it moves (v); the induction head finds the position through the
    # previous-token head's output (K-composition), reads the token to copy from the input (v), writes the logits
    return {f"input->{prev}<v>", f"{prev}->{ind}<k>", f"input->{ind}<v>", f"{ind}->logits"}


def test_the_toy_is_attention_only_so_its_mlp_senders_write_nothing(planted) -> None:
    model, _, task = planted
    graph = graph_of(model)
    assert graph.n_layers == 2 and graph.n_heads == 2
    acts = sender_outputs(model, graph, task.clean_tokens)
    for layer in range(2):
        assert not bool(acts[graph.sender(f"m{layer}")].any())
    assert bool(acts[graph.sender("a1.h1")].any())


def test_eap_and_eap_ig_rank_the_planted_edges_first(planted) -> None:
    model, info, task = planted
    for scores in (eap(model, task), eap_ig(model, task, steps=5)):
        top = scores.ranked()[:4]
        assert {edge for edge, _ in top} == _planted_edges(info), top
        assert all(score < 0 for _, score in top)  # ablating any of them lowers the logit difference
        assert abs(scores.ranked()[4][1]) < 1e-3 * abs(top[-1][1])  # nothing else matters


@pytest.mark.slow
def test_saturated_attention_hides_the_key_edge_from_eap_but_not_from_acdc() -> None:
    """With very sharp attention (sharpness 30) the gradient through the softmax vanishes: EAP scores the
    K-composition edge ~0 although ablating it costs almost the whole logit difference. ACDC, which runs the
    ablations, keeps it. (Hanna et al. 2024 motivate EAP-IG with this failure.)"""
    model, info = induction_model(sharpness=30.0)
    task = induction_task(model, n=8, seq_len=10, seed=1)
    (pl, ph), (il, ih) = info.prev_head, info.induction_head
    key_edge = f"a{pl}.h{ph}->a{il}.h{ih}<k>"
    scores = eap(model, task)
    graph = scores.graph
    runner = CircuitRunner(model, task)
    without = graph.allowed.clone()
    without[graph.edge(key_edge)] = False
    true_effect = runner.run(without) - runner.full
    assert true_effect < -0.9 * (runner.full - runner.ablated)
    assert abs(float(scores.scores[graph.edge(key_edge)])) < 1e-3
    pruned = acdc(model, task.with_metric("kl"), threshold=0.05)
    assert key_edge in {f"{s}->{r}" for s, r, _ in pruned.edge_list()}


@pytest.mark.slow
def test_the_planted_circuit_is_faithful_and_acdc_finds_it(planted) -> None:
    model, info, task = planted
    found = discover_circuit(model, task, "eap-ig", target=0.9)
    kept = {f"{s}->{r}" for s, r, _ in found.circuit.edge_list()}
    assert _planted_edges(info) <= kept
    assert found.circuit.info["faithfulness"]["normalized"] >= 0.9
    assert found.circuit.n_edges <= 6
    graph = found.circuit.graph
    runner = CircuitRunner(model, task)
    hand = torch.zeros_like(graph.allowed)
    for name in _planted_edges(info):
        hand[graph.edge(name)] = True
    assert runner.faithfulness(hand).normalized == pytest.approx(1.0, abs=0.02)
    pruned = acdc(model, task.with_metric("kl"), threshold=0.05)
    assert _planted_edges(info) <= {f"{s}->{r}" for s, r, _ in pruned.edge_list()}
    assert pruned.n_edges < graph.n_edges // 2
    with pytest.raises(CircuitError, match="threshold"):
        acdc(model, task, threshold=-1)
