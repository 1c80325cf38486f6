"""Pruning by influence and the graph scores, against naive references."""

from __future__ import annotations

import pytest
import torch

import circuitscope as cs
from circuitscope.errors import OptionError
from circuitscope.graphs import (
    AttributionGraph,
    GraphConfig,
    attribution_graph,
    graph_scores,
    node_influence,
    prune_graph,
)
from circuitscope.progress import SILENT
from circuitscope.transcoders.modules import TranscoderSet
from tests.graphs.conftest import random_transcoders

Pair = tuple[cs.HookedModel, TranscoderSet]


@pytest.fixture(scope="module")
def graphs(relu64: Pair) -> dict[str, AttributionGraph]:
    model, tc = relu64
    prompt = torch.tensor([5, 17, 3, 42, 9, 28])
    noisy = random_transcoders(model, "cross_layer", skip=True)
    return {
        "exact": attribution_graph(model, tc, prompt[:4], GraphConfig(batch_size=128), on_progress=SILENT),
        "noisy": attribution_graph(model, noisy, prompt, GraphConfig(batch_size=32), on_progress=SILENT),
    }


def _naive_influence(graph: AttributionGraph) -> torch.Tensor:
    """``w ((I - A)^-1 - I)`` with ``A`` the row-normalised absolute adjacency: every path, summed at once."""
    a = graph.adjacency.abs()
    a = a / a.sum(1, keepdim=True).clamp(min=1e-10)
    w = torch.zeros(a.shape[0], dtype=a.dtype)
    w[-graph.n_logits :] = graph.logit_probabilities.to(a.dtype)
    eye = torch.eye(a.shape[0], dtype=a.dtype)
    return w @ (torch.linalg.inv(eye - a) - eye)


def test_influence_sums_every_path(graphs: dict[str, AttributionGraph]) -> None:
    for graph in graphs.values():
        torch.testing.assert_close(node_influence(graph), _naive_influence(graph), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("node_threshold", [0.5, 0.8])
def test_pruning_keeps_the_node_threshold(graphs: dict[str, AttributionGraph], node_threshold: float) -> None:
    graph = graphs["noisy"]
    pruned = prune_graph(graph, node_threshold, edge_threshold=1.0)
    influence = _naive_influence(graph)
    inner = len(graph.nodes) - graph.n_logits - len(graph.tokens)
    ordered = torch.sort(influence, descending=True).values
    share = torch.cumsum(ordered, 0) / ordered.sum()
    needed = int((share < node_threshold).sum()) + 1  # the fewest nodes holding node_threshold of the influence
    cut = ordered[needed - 1]
    kept = pruned.node_mask[:inner]
    assert bool((influence[:inner][kept] >= cut).all())  # only nodes of that set are kept
    assert int(kept.sum()) <= needed
    assert bool(pruned.node_mask[inner:].all())  # embeddings and logits always
    edges = pruned.edge_mask
    assert not edges[~pruned.node_mask].any() and not edges[:, ~pruned.node_mask].any()
    assert bool(edges[:, :inner][:, kept].any(0).all())  # every kept feature or error has a kept outgoing edge


def test_a_lower_edge_threshold_keeps_fewer_edges(graphs: dict[str, AttributionGraph]) -> None:
    graph = graphs["noisy"]
    counts = [int(prune_graph(graph, 1.0, t).edge_mask.sum()) for t in (0.5, 0.9, 0.98)]
    assert counts[0] < counts[1] < counts[2] <= int((graph.adjacency != 0).sum())
    with pytest.raises(OptionError, match="node_threshold"):
        prune_graph(graph, 1.5)


def test_scores_are_one_without_errors_and_below_with_them(graphs: dict[str, AttributionGraph]) -> None:
    exact = graph_scores(graphs["exact"])
    assert exact.replacement == pytest.approx(1.0, abs=1e-9) and exact.completeness == pytest.approx(1.0, abs=1e-9)
    noisy = graph_scores(graphs["noisy"])
    assert 0 < noisy.replacement < 1 and 0 < noisy.completeness < 1
