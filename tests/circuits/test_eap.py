"""EAP and EAP-IG scores equal the first-order formula, computed through a different code path."""

from __future__ import annotations

import pytest
import torch

from circuitscope import HookedModel
from circuitscope.circuits import CircuitError, EdgeRun, eap, eap_ig, edge_scores, graph_of, reference_outputs
from circuitscope.tasks import Task
from circuitscope.tasks.metrics import MetricName
from tests.tiny_models import TinyModels, random_task


def _task(n: int = 4, seq: int = 7, metric: MetricName = "logit_diff", same: bool = False) -> Task:
    corrupt = None if same else (1, 3)
    return random_task(n, seq, seed=0, corrupt=corrupt, answer_from_end=(1, 2, 1, 3), metric=metric, name="t")


def _metric_with_coeff(
    model: HookedModel, task: Task, coeff: torch.Tensor, ablated: torch.Tensor, **kw
) -> torch.Tensor:
    graph = graph_of(model)
    run = EdgeRun(model, graph, len(task), task.seq_len, coeff=coeff, ablated=ablated, **kw)
    logits = run.answer_logits(task.clean_tokens, task.answer_pos, grad=True).double()
    rows = torch.arange(len(task))
    return (logits[rows, task.correct] - logits[rows, task.incorrect]).mean()


@pytest.mark.parametrize("family", ["gpt2", "llama_gqa", "gpt_neox", "gemma3"])
def test_eap_is_the_derivative_of_ablating_each_edge(tiny: TinyModels, family: str) -> None:
    """score(u -> r) = d metric / d c at c = 0, where c scales the ablation of that edge alone. The derivative is
    taken by autograd through the edge-ablation coefficients (not the receiver gradients EAP uses), for every edge
    at once, and checked against central differences on a few edges (float64 model)."""
    model = HookedModel(tiny.hf(family).double())
    task = _task()
    scores = eap(model, task, batch_size=3)  # two batches: the sums over batches must add up
    graph = graph_of(model)
    ablated = reference_outputs(model, graph, task, "corrupted")
    coeff = torch.zeros(graph.allowed.shape, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(_metric_with_coeff(model, task, coeff, ablated), coeff)
    allowed = graph.allowed
    # EAP's float32 einsum of (ablated - clean) with receiver gradients vs float64 autograd through the
    # coefficients, cast down: float32 rounding of scores ~0.1 (exact here)
    torch.testing.assert_close(scores.scores[allowed], grad[allowed].float(), atol=1e-5, rtol=1e-4)
    assert scores.scores[~allowed].isnan().all()
    # central differences on the strongest edges (the forward pass has float32 softmaxes, hence eps = 1e-3)
    n_r = graph.n_receivers
    for i in scores.scores.nan_to_num().abs().flatten().topk(3).indices.tolist():
        u, r = divmod(i, n_r)
        values = []
        for eps in (1e-3, -1e-3):
            c = torch.zeros(allowed.shape, dtype=torch.float64)
            c[u, r] = eps
            with torch.no_grad():
                values.append(float(_metric_with_coeff(model, task, c, ablated)))
        fd = (values[0] - values[1]) / 2e-3
        assert fd == pytest.approx(float(scores.scores[u, r]), rel=2e-2, abs=1e-4)


def test_eap_ig_averages_the_gradient_along_the_interpolated_inputs(tiny: TinyModels) -> None:
    model = HookedModel(tiny.hf("llama_gqa").double())
    task = _task()
    steps = 3
    ig = eap_ig(model, task, steps=steps)
    graph = graph_of(model)
    ablated = reference_outputs(model, graph, task, "corrupted")
    with torch.no_grad():
        clean_run = EdgeRun(model, graph, len(task), task.seq_len)
        clean_run.answer_logits(task.clean_tokens, task.answer_pos)
    clean_input = clean_run.acts[0]
    total = torch.zeros(graph.allowed.shape, dtype=torch.float64)
    for k in range(1, steps + 1):
        x0 = ablated[0] + (k / steps) * (clean_input - ablated[0])
        # the gradient at each interpolated input, times the clean-to-ablated change of every sender
        run = EdgeRun(model, graph, len(task), task.seq_len, leaves=True, input_override=x0)
        logits = run.answer_logits(task.clean_tokens, task.answer_pos, grad=True).double()
        rows = torch.arange(len(task))
        metric = (logits[rows, task.correct] - logits[rows, task.incorrect]).mean()
        grads = run.receiver_grads(metric)
        total += torch.einsum("ubpd,rbpd->ur", ablated - clean_run.acts, grads)
    expected = (total / steps).float()
    # the same steps accumulated here in float64, there in float32: rounding of scores ~0.1 (exact here)
    torch.testing.assert_close(ig.scores[graph.allowed], expected[graph.allowed], atol=1e-5, rtol=1e-4)
    assert ig.method == "eap-ig" and ig.steps == steps
    one_step = edge_scores(model, task, steps=1)
    assert one_step.method == "eap"
    assert not torch.allclose(ig.scores.nan_to_num(), one_step.scores.nan_to_num())  # they differ by ~0.08


def test_ranked_and_top_mask(tiny: TinyModels) -> None:
    model = tiny.hooked("gpt2")
    scores = eap(model, _task())
    ranked = scores.ranked()
    assert len(ranked) == scores.graph.n_edges
    assert abs(ranked[0][1]) >= abs(ranked[1][1]) >= abs(ranked[-1][1])
    mask = scores.top_mask(5)
    assert int(mask.sum()) == 5
    assert {scores.graph.edge_name(u, r) for u, r in mask.nonzero().tolist()} == {e for e, _ in ranked[:5]}
    assert int(scores.top_mask(0).sum()) == 0
    assert int(scores.top_mask(10**6).sum()) == scores.graph.n_edges


def test_bad_input(tiny: TinyModels) -> None:
    model = tiny.hooked("gpt2")
    with pytest.raises(CircuitError, match="does not depend on the graph"):
        eap(model, _task(same=True))
    with pytest.raises(CircuitError, match="zero gradient"):
        eap(model, _task(metric="kl"))
    with pytest.raises(CircuitError, match="steps"):
        eap_ig(model, _task(), steps=1)
    with pytest.raises(CircuitError, match="unknown ablation"):
        eap(model, _task(), ablation="gaussian")
    eap_ig(model, _task(metric="kl"), steps=2)  # KL works with integrated gradients
