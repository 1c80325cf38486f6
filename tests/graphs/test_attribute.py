"""Edges of the attribution graph: finite differences, conservation, batching, logit nodes, bad input."""

from __future__ import annotations

import pytest
import torch

import circuitscope as cs
from circuitscope.errors import TokenizationError
from circuitscope.graphs import (
    AttributionGraph,
    GraphBudgetError,
    GraphConfig,
    Sources,
    attribution_graph,
    estimate_bytes,
    local_replacement,
    logit_targets,
)
from circuitscope.progress import SILENT
from circuitscope.transcoders.modules import TranscoderSet
from tests.graphs.conftest import random_transcoders
from tests.tiny_models import TinyModels

Pair = tuple[cs.HookedModel, TranscoderSet]


def _graph(model: cs.HookedModel, tc: TranscoderSet, prompt: torch.Tensor, batch: int = 16) -> AttributionGraph:
    return attribution_graph(model, tc, prompt, GraphConfig(batch_size=batch), on_progress=SILENT)


def _target_inputs(model: cs.HookedModel, tc: TranscoderSet, graph: AttributionGraph, final, inputs) -> torch.Tensor:
    """Each target row's input (without its constant) read off one frozen pass, a naive reference."""
    w_u = model.W_U.detach()
    out = torch.zeros(len(graph.nodes), final.shape[0], dtype=torch.float64)
    for i, node in enumerate(graph.nodes):
        if node.kind == "feature":
            out[i] = inputs[node.layer][:, node.position] @ tc.encoder(node.layer)[0][:, node.index].detach()
        elif node.kind == "logit":
            out[i] = final[:, -1] @ (w_u[:, node.index] - w_u.mean(1))
    return out


def test_edges_equal_finite_differences_of_the_replacement_model(
    relu64: Pair, noisy: TranscoderSet, prompt: torch.Tensor
) -> None:
    model, tc = relu64[0], noisy
    graph = _graph(model, tc, prompt)
    repl = local_replacement(model, tc, prompt)
    n_f, n_pos = graph.n_features, len(graph.tokens)
    sources = [0, n_f // 2, n_f - 1, n_f, n_f + graph.n_errors - 1, n_f + graph.n_errors, n_f + graph.n_errors + 3]
    rows = []
    for s in sources:  # each source removed (set to zero), one run each
        embed, errors, acts = repl.embed.clone(), repl.errors.clone(), repl.features.activation.clone()
        if s < n_f:
            acts[s] = 0
        elif s < n_f + graph.n_errors:
            layer, pos = divmod(s - n_f, n_pos)
            errors[layer, pos] = 0
        else:
            embed[s - n_f - graph.n_errors] = 0
        run = repl.run(model, tc, Sources(embed, errors, acts))
        rows.append(_target_inputs(model, tc, graph, run.final.detach(), [x.detach() for x in run.inputs])[:, 0])
    clean = repl.run(model, tc)
    base = _target_inputs(model, tc, graph, clean.final.detach(), [x.detach() for x in clean.inputs])[:, 0]
    for s, removed in zip(sources, rows, strict=True):
        torch.testing.assert_close(graph.adjacency[:, s], base - removed, rtol=1e-9, atol=1e-10)
    assert float(graph.adjacency[:, sources].abs().max()) > 1e-2


@pytest.mark.parametrize("exact", [True, False])
def test_each_input_is_its_incoming_edges_plus_its_bias(relu64: Pair, prompt: torch.Tensor, exact: bool) -> None:
    model, tc = relu64
    tc = tc if exact else random_transcoders(model, "cross_layer", skip=True)
    graph = _graph(model, tc, prompt, batch=128)
    repl = local_replacement(model, tc, prompt)
    features = [i for i, n in enumerate(graph.nodes) if n.kind == "feature"]
    logits = [i for i, n in enumerate(graph.nodes) if n.kind == "logit"]
    # the inputs are the real model's: the encoder pre-activations, the centred logits
    pre = torch.stack([repl.pre_acts[n.layer][n.position, n.index] for n in graph.nodes if n.kind == "feature"])
    torch.testing.assert_close(graph.inputs[features], pre, rtol=0, atol=1e-10)
    real = repl.logits[-1] - repl.logits[-1].mean()
    torch.testing.assert_close(graph.inputs[logits], real[graph.logit_tokens], rtol=0, atol=1e-10)
    rows = features + logits
    conserved = graph.adjacency[rows].sum(1) + graph.biases[rows]
    torch.testing.assert_close(conserved, graph.inputs[rows], rtol=0, atol=1e-10)
    assert float(graph.adjacency[rows].abs().sum(1).min()) > 0
    others = [i for i in range(len(graph.nodes)) if i not in rows]
    assert not graph.adjacency[others].any()  # errors and embeddings have no inputs


def test_batched_backward_passes_equal_one_target_at_a_time(relu64: Pair, prompt: torch.Tensor) -> None:
    model, _ = relu64
    tc = random_transcoders(model, "cross_layer", skip=True)
    one = _graph(model, tc, prompt[:5], batch=1)
    batched = _graph(model, tc, prompt[:5], batch=7)
    assert batched.stats is not None and one.stats is not None
    assert one.stats.backward_batches == one.n_features + one.n_logits
    assert batched.stats.backward_batches == -(-(batched.n_features + batched.n_logits) // 7)
    torch.testing.assert_close(batched.adjacency, one.adjacency, rtol=0, atol=1e-12)


def test_logit_nodes_cover_the_probability_mass() -> None:
    probs = torch.tensor([0.05, 0.5, 0.15, 0.3], dtype=torch.float64)
    assert logit_targets(probs, GraphConfig()) == [1, 3, 2]  # 0.5 + 0.3 + 0.15 = 0.95
    assert logit_targets(probs, GraphConfig(logit_probability=0.5)) == [1]
    assert logit_targets(probs, GraphConfig(max_logits=2)) == [1, 3]
    assert logit_targets(probs, GraphConfig(max_logits=2), forced=0) == [0, 1]
    assert logit_targets(probs, GraphConfig(), forced=3) == [3, 1, 2]


def test_graph_json_lists_every_edge(relu64: Pair, prompt: torch.Tensor) -> None:
    model, tc = relu64
    graph = _graph(model, tc, prompt[:4], batch=128)
    data = graph.to_json()
    assert len(data["nodes"]) == len(graph.nodes) == graph.n_features + 3 * 4 + 4 + graph.n_logits
    assert len(data["edges"]) == int((graph.adjacency != 0).sum())
    t, s, w = data["edges"][0]
    assert graph.adjacency[t, s] == w


def test_bad_input_is_refused_with_what_fits(tiny: TinyModels) -> None:
    model = tiny.text()
    tc = random_transcoders(model)
    with pytest.raises(TokenizationError, match="not a single token"):
        attribution_graph(model, tc, "the cat sat", GraphConfig(target="cat sat"), on_progress=SILENT)
    with pytest.raises(GraphBudgetError, match=r"prompts up to (\d+) tokens fit") as err:
        attribution_graph(model, tc, "the cat sat on the mat", GraphConfig(memory_gb=2e-4), on_progress=SILENT)
    fits = int(str(err.value).split("prompts up to ")[1].split(" ")[0])
    repl = local_replacement(model, tc, model.to_tokens("the cat sat on the mat")[0])
    rate = len(repl.features) / len(repl.tokens)
    n_logits = len(logit_targets(torch.softmax(repl.logits[-1].double(), -1), GraphConfig()))
    budget = int(2e-4 * 1024**3)
    assert estimate_bytes(model.cfg, fits, round(rate * fits), n_logits, 16) <= budget
    assert estimate_bytes(model.cfg, fits + 1, round(rate * (fits + 1)), n_logits, 16) > budget
    assert fits < len(repl.tokens)
    with pytest.raises(ValueError, match="batch_size"):
        GraphConfig(batch_size=0)
