"""Validation by intervention: predicted effects beside the effects measured in both models."""

from __future__ import annotations

import pytest
import torch

import circuitscope as cs
from circuitscope.graphs import GraphConfig, attribution_graph, validate_edges
from circuitscope.progress import SILENT
from circuitscope.transcoders.modules import TranscoderSet

Pair = tuple[cs.HookedModel, TranscoderSet]


def test_ablations_measure_the_predicted_effects(relu64: Pair) -> None:
    model, tc = relu64
    prompt = torch.tensor([5, 17, 3, 42, 9])
    graph = attribution_graph(model, tc, prompt, GraphConfig(batch_size=64), on_progress=SILENT)
    result = validate_edges(model, tc, graph, n_edges=6)
    assert len(result.checks) == 6
    weights = [abs(c.weight) for c in result.checks]
    assert weights == sorted(weights, reverse=True) and weights[0] == float(
        graph.adjacency[:, : graph.n_features].abs().max()
    )
    for check in result.checks:
        assert check.predicted == -check.weight
        assert check.replacement == pytest.approx(check.predicted, rel=1e-9, abs=1e-12)  # the edge's definition
    # the real model, measured independently: exact transcoders, so zeroing a feature is zeroing its MLP neuron
    top = result.checks[0]
    source = next(n for n in graph.nodes if n.kind == "feature" and f"{n.layer}_{n.index}_{n.position}" == top.source)
    target = next(n for n in graph.nodes if f"{n.layer}_{n.index}_{n.position}" == top.target)
    assert target.kind == "feature"

    def zero_neuron(post: torch.Tensor, hook: object) -> torch.Tensor:
        post = post.clone()
        post[:, source.position, source.index] = 0
        return post

    name = tc.input_hook(target.layer)
    with torch.no_grad():
        _, clean = model.run_with_cache(prompt[None], names=name)
        _, ablated = model.run_with_cache(
            prompt[None], names=name, fwd_hooks=[(f"blocks.{source.layer}.mlp.hook_post", zero_neuron)]
        )
        pre = [tc.pre_acts(target.layer, c[name][0, target.position])[target.index] for c in (clean, ablated)]
    assert top.real == pytest.approx(float(pre[1] - pre[0]), rel=1e-9, abs=1e-12)
    # the frozen, linear picture gets the direction of the top edges right
    assert sum((c.real > 0) == (c.predicted > 0) for c in result.checks) >= 5
    assert set(result.to_json()["checks"][0]) == {"source", "target", "weight", "predicted", "replacement", "real"}
