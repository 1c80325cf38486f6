"""Graph jobs, graph files and circuit files all come out in JSON the graph viewer's own check accepts."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import circuitscope as cs
from circuitscope.circuits import Circuit
from circuitscope.circuits.graph import Graph
from circuitscope.errors import LoadError
from circuitscope.graphs import GraphConfig, attribution_graph, graph_json, prune_graph
from circuitscope.report.attribution_graph import GraphFormatError, validate_graph
from circuitscope.sae import Corpus
from circuitscope.serve.errors import ServeInputError
from circuitscope.serve.views import circuit_file_view, graph_file_view, graph_job
from circuitscope.serve.views.graphs import CIRCUIT_POSITION
from tests.graphs.conftest import random_transcoders

PROMPT = "the cat"


@pytest.fixture(autouse=True)
def _no_leaked_hooks(text_model: cs.HookedModel) -> Iterator[None]:
    yield
    assert text_model.active_hooks() == []


def test_a_graph_job_is_the_pruned_graph_the_viewer_accepts(text_model: cs.HookedModel) -> None:
    tc = random_transcoders(text_model, d_sae=8)
    reports: list[tuple[str, int, int]] = []
    document = graph_job(
        text_model, tc, PROMPT, max_feature_nodes=None, on_progress=lambda *report: reports.append(report)
    )
    validate_graph(document)
    graph = attribution_graph(text_model, tc, PROMPT, GraphConfig(max_feature_nodes=None))
    expected = graph_json(graph, prune_graph(graph), "explorer")
    assert [n["node_id"] for n in document["nodes"]] == [n["node_id"] for n in expected["nodes"]]
    assert document["links"] == expected["links"]
    assert document["metadata"]["prompt_tokens"] == text_model.to_str_tokens(PROMPT)
    features = [n for n in document["nodes"] if n["feature_type"] == "cross layer transcoder"]
    assert features and all(len(n["top_logits"]) == 5 for n in features)
    assert reports and json.loads(json.dumps(document)) == document
    corpus = Corpus("texts", ["the quick brown fox jumps over the lazy dog, and the cat sat on the mat. " * 4])
    with_contexts = graph_job(
        text_model, tc, PROMPT, max_feature_nodes=None, on_progress=None, corpus=corpus, n_contexts=4
    )
    validate_graph(with_contexts)
    shown = [n for n in with_contexts["nodes"] if n["feature_type"] == "cross layer transcoder"]
    assert all(1 <= len(n["top_contexts"]) <= 3 and len(n["top_contexts"][0]["tokens"]) == 24 for n in shown)
    with pytest.raises(ServeInputError, match="the prompt is empty"):
        graph_job(text_model, tc, "", max_feature_nodes=None, on_progress=None)


def test_a_graph_file_is_read_and_checked(text_model: cs.HookedModel, tmp_path: Path) -> None:
    tc = random_transcoders(text_model, d_sae=8)
    document = graph_job(text_model, tc, PROMPT, max_feature_nodes=4, on_progress=None)
    path = tmp_path / "g.json"
    path.write_text(json.dumps(document))
    assert graph_file_view(path) == document
    path.write_text(json.dumps({**document, "links": [{"source": "nope", "target": "nope", "weight": 1}]}))
    with pytest.raises(GraphFormatError, match="is 'nope', which is not a node_id of this graph"):
        graph_file_view(path)
    path.write_text("[1, 2]")
    with pytest.raises(LoadError):
        graph_file_view(path)


def _circuit(model: cs.HookedModel) -> Circuit:
    graph = Graph.from_config(model.cfg)
    edges = torch.zeros(graph.n_senders, graph.n_receivers, dtype=torch.bool)
    scores = torch.full(edges.shape, math.nan)
    for sender, receiver, score in [
        ("input", "a0.h1<q>", 0.5),
        ("input", "a0.kv0<k>", 0.25),
        ("a0.h1", "m1", -1.5),
        ("m1", "logits", 2.0),
        ("a0.h3", "logits", math.nan),
    ]:
        u, r = graph.sender(sender), graph.receiver(receiver)
        edges[u, r] = True
        scores[u, r] = score
    return Circuit(graph, edges, scores, "tiny", {"name": "ioi"}, "eap")


def test_a_circuit_file_is_its_edges_between_its_nodes(text_model: cs.HookedModel, tmp_path: Path) -> None:
    circuit = _circuit(text_model)
    path = circuit.save(tmp_path / "c.json")
    document = circuit_file_view(path)
    validate_graph(document)
    assert document["metadata"]["prompt_tokens"] == [CIRCUIT_POSITION]
    by_id = {n["node_id"]: n for n in document["nodes"]}
    assert list(by_id) == ["input", "a0.h1", "a0.h3", "m1", "a0.kv0", "logits"]
    assert {k: by_id["a0.h1"][k] for k in ("layer", "feature", "clerp", "component")} == {
        "layer": "0",
        "feature": 1,
        "clerp": "L0H1",
        "component": "head",
    }
    assert by_id["m1"]["clerp"] == "L1 MLP" and by_id["a0.kv0"]["clerp"] == "L0 KV0"
    links = {(link["source"], link["receiver"]): link for link in document["links"]}
    assert len(links) == circuit.n_edges == 5
    assert links["input", "a0.kv0<k>"]["target"] == "a0.kv0" and links["a0.h1", "m1"]["weight"] == -1.5
    assert links["a0.h3", "logits"]["weight"] == 0.0 and not links["a0.h3", "logits"]["scored"]
    assert document["metadata"]["prompt"] == "eap circuit of tiny on ioi"
