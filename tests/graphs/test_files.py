"""Graph files: circuit-tracer's viewer JSON (a schema test), top logits, the kept subgraph's file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import circuitscope as cs
from circuitscope.errors import LoadError
from circuitscope.graphs import (
    GraphConfig,
    GraphInputError,
    attribution_graph,
    feature_top_logits,
    graph_json,
    prune_graph,
    read_subgraph,
    write_subgraph,
)
from circuitscope.progress import SILENT
from circuitscope.report.attribution_graph import validate_graph
from circuitscope.transcoders.modules import TranscoderSet
from tests.graphs.conftest import random_transcoders

Pair = tuple[cs.HookedModel, TranscoderSet]

NODE_KEYS = {
    "node_id", "feature", "layer", "ctx_idx", "feature_type", "token_prob", "is_target_logit", "run_idx",
    "reverse_ctx_idx", "jsNodeId", "clerp", "influence", "activation",
}  # fmt: skip
"""circuit-tracer's ``Node`` model (frontend/graph_models.py), every field."""


@pytest.fixture(scope="module")
def document(relu64: Pair) -> tuple[dict, object]:
    model, _ = relu64
    tc = random_transcoders(model, "cross_layer", skip=True)
    graph = attribution_graph(model, tc, torch.tensor([5, 17, 3, 42, 9]), GraphConfig(), on_progress=SILENT)
    first = graph_json(graph, prune_graph(graph))["nodes"][0]["node_id"]  # a kept feature
    return graph_json(
        graph, prune_graph(graph), "tiny", {first: {"top_logits": [{"token": "x", "effect": 1.5}]}}
    ), graph


def test_the_graph_json_has_circuit_tracers_schema(document: tuple[dict, object]) -> None:
    data, graph = document
    json.loads(json.dumps(data, allow_nan=False))  # plain JSON
    validate_graph(data)  # what the viewer checks
    assert set(data) == {"metadata", "qParams", "nodes", "links"}
    assert set(data["metadata"]) == {"slug", "scan", "transcoder_list", "prompt_tokens", "prompt", "node_threshold"}
    assert data["qParams"] == {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""}
    ids = [n["node_id"] for n in data["nodes"]]
    assert len(set(ids)) == len(ids)
    for node in data["nodes"]:
        assert NODE_KEYS <= set(node) <= NODE_KEYS | {"top_logits", "top_contexts"}
        kind, layer, pos = node["feature_type"], node["layer"], node["ctx_idx"]
        expected = {
            "cross layer transcoder": (f"{layer}_{node['feature']}_{pos}", f"{layer}_{node['feature']}-0"),
            "mlp reconstruction error": (f"err_{layer}_{pos}", f"{layer}_{pos}-0"),  # unique, unlike 0_l_p
            "embedding": (f"E_{graph.tokens[pos]}_{pos}", f"E_{graph.tokens[pos]}-{pos}"),  # type: ignore[attr-defined]
            "logit": (f"{layer}_{node['feature']}_{pos}", f"L_{node['feature']}-{pos}"),
        }[kind]
        assert (node["node_id"], node["jsNodeId"]) == expected
    assert data["nodes"][0]["top_logits"] == [{"token": "x", "effect": 1.5}]
    assert sum("top_logits" in n for n in data["nodes"]) == 1
    embeddings = [n for n in data["nodes"] if n["feature_type"] == "embedding"]
    logits = [n for n in data["nodes"] if n["feature_type"] == "logit"]
    assert len(embeddings) == 5 and [n["ctx_idx"] for n in embeddings] == list(range(5))
    assert [n["is_target_logit"] for n in logits] == [True] + [False] * (len(logits) - 1)
    assert all(n["layer"] == "4" and n["clerp"].startswith('Output "') for n in logits)  # n_layers + 1
    known = set(ids)
    assert data["links"] and all(x["source"] in known and x["target"] in known for x in data["links"])
    assert all(set(x) == {"source", "target", "weight"} for x in data["links"])


def test_top_logits_are_the_decoders_direct_effects(relu64: Pair) -> None:
    model, _ = relu64
    tc = random_transcoders(model, "cross_layer")
    top = feature_top_logits(model, tc, [(1, 4)], k=3)[1, 4]
    row = torch.stack([dec[4] for _, dec in tc.decoders(1)]).sum(0)
    w_u = model.W_U.detach()
    effects = row.detach() @ (w_u - w_u.mean(1, keepdim=True))
    values, _ = torch.sort(effects, descending=True)
    assert [x["effect"] for x in top] == pytest.approx(values[:3].tolist(), rel=1e-12)


def test_the_kept_subgraph_round_trips(document: tuple[dict, object], tmp_path: Path) -> None:
    data, _ = document
    link = data["links"][0]
    keep = [link["source"], link["target"], data["nodes"][-1]["node_id"]]
    path = tmp_path / "sub.json"
    written = write_subgraph(path, data, keep, supernodes=[keep[:2]])
    assert read_subgraph(path) == written
    assert [n["node_id"] for n in written["nodes"]] == keep
    assert link in written["links"]
    assert all(x["source"] in keep and x["target"] in keep for x in written["links"])
    with pytest.raises(GraphInputError, match="not in the graph"):
        write_subgraph(path, data, ["nope"])
    path.write_text(json.dumps({**written, "version": 99}))
    with pytest.raises(LoadError, match="version 99"):
        read_subgraph(path)
