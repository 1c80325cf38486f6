"""The graphs view: attribution graphs and circuits in the graph viewer's JSON (circuit-tracer's graph format).

:func:`graph_job` builds the prompt's graph as ``circuitscope graph`` does: :func:`~circuitscope.graphs.
attribution_graph`, :func:`~circuitscope.graphs.prune_graph` at the default thresholds, and
:func:`~circuitscope.graphs.graph_json` with each kept feature's top logits
(:func:`~circuitscope.graphs.extras.node_extras`). :func:`graph_file_view` reads a saved graph and
:func:`circuit_file_view` turns a circuit file into the same shape, so one viewer shows both. Every result passes
the viewer's own check, :func:`~circuitscope.report.attribution_graph.validate_graph`.

A circuit has no token positions: every node stands at one position, labelled ``all positions``; a head is drawn as
a feature node and an MLP as an error node (the viewer's two kinds of inner node), and each node's ``clerp`` and
``component`` fields say what it is. A link is one kept edge, sender to the node of its receiver (``receiver``
names the query, key or value input); its weight is the edge's score (0 for an unscored edge, with
``"scored": false``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from circuitscope.circuits import Circuit
from circuitscope.core.files import read_json_object
from circuitscope.core.hooked_model import HookedModel
from circuitscope.errors import LoadError
from circuitscope.graphs import GraphConfig, attribution_graph, graph_json, prune_graph
from circuitscope.graphs.extras import node_extras
from circuitscope.progress import OnProgress
from circuitscope.report.attribution_graph import validate_graph
from circuitscope.sae import Corpus
from circuitscope.serve.views._checks import prompt_tokens
from circuitscope.transcoders import TranscoderSet

__all__ = ["CIRCUIT_POSITION", "circuit_file_view", "circuit_json", "graph_file_view", "graph_job"]

CIRCUIT_POSITION = "all positions"
"""The one 'token' a circuit's nodes stand at."""


def graph_job(
    model: HookedModel,
    transcoders: TranscoderSet,
    prompt: str,
    *,
    max_feature_nodes: int | None,
    on_progress: OnProgress | None,
    corpus: Corpus | None = None,
    n_contexts: int = 0,
) -> dict[str, Any]:
    """The viewer JSON of ``prompt``'s pruned attribution graph (at most ``max_feature_nodes`` feature nodes; None
    for every active feature), each kept feature with its top logits and, given ``corpus`` and ``n_contexts``, its
    top activating contexts."""
    prompt_tokens(model, prompt)
    config = GraphConfig(max_feature_nodes=max_feature_nodes)
    graph = attribution_graph(model, transcoders, prompt, config, on_progress=on_progress)
    pruned = prune_graph(graph)
    extras = node_extras(model, transcoders, graph, pruned, corpus, n_contexts)
    document = graph_json(graph, pruned, "explorer", extras)
    validate_graph(document)
    return document


def graph_file_view(path: Path) -> dict[str, Any]:
    """A graph JSON file (``circuitscope graph``'s, or circuit-tracer's), checked as the viewer checks it."""
    document = read_json_object(Path(path), LoadError)
    validate_graph(document)
    return document


def _node(name: str, n_layers: int) -> dict[str, Any]:
    """One circuit node (``input``, ``a3.h1``, ``a3.kv0``, ``m3``, ``logits``) as a viewer node."""
    layer, _, rest = name[1:].partition(".")
    if name in ("input", "logits"):
        kind = "embedding" if name == "input" else "logit"
        layer, feature, label, component = ("E" if name == "input" else str(n_layers + 1)), 0, name, name
    elif name.startswith("m"):
        kind, feature, label, component = "mlp reconstruction error", -1, f"L{layer} MLP", "mlp"
    else:
        shared = rest.startswith("kv")  # the key/value inputs of a key/value head (grouped-query attention)
        feature = int(rest[2:] if shared else rest[1:])
        kind, label = "cross layer transcoder", f"L{layer} KV{feature}" if shared else f"L{layer}H{feature}"
        component = "kv_head" if shared else "head"
    return {
        "node_id": name,
        "jsNodeId": name,
        "feature_type": kind,
        "layer": layer,
        "feature": feature,
        "ctx_idx": 0,
        "clerp": label,
        "component": component,
        "token_prob": 0.0,
        "is_target_logit": name == "logits",
        "influence": None,
        "activation": None,
    }


def circuit_json(circuit: Circuit, slug: str = "circuit") -> dict[str, Any]:
    """``circuit`` in the viewer's JSON (see the module docstring)."""
    n_layers = circuit.graph.n_layers
    names = list(dict.fromkeys(["input", *circuit.nodes, "logits"]))
    links = []
    for sender, receiver, score in circuit.edge_list():
        scored = not math.isnan(score)
        target = receiver.split("<")[0]
        weight = score if scored else 0.0
        links.append({"source": sender, "target": target, "weight": weight, "receiver": receiver, "scored": scored})
    task = circuit.task.get("name", "")
    return {
        "metadata": {
            "slug": slug,
            "scan": "circuit",
            "transcoder_list": [],
            "prompt_tokens": [CIRCUIT_POSITION],
            "prompt": f"{circuit.method} circuit of {circuit.model_name}" + (f" on {task}" if task else ""),
            "node_threshold": None,
            "circuit": {"method": circuit.method, "ablation": circuit.ablation, "task": circuit.task},
        },
        "qParams": {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""},
        "nodes": [_node(name, n_layers) for name in names],
        "links": links,
    }


def circuit_file_view(path: Path, model: HookedModel | None = None) -> dict[str, Any]:
    """A circuitscope circuit file (checked against ``model`` when given) in the viewer's JSON."""
    document = circuit_json(Circuit.load(path, model), Path(path).stem)
    validate_graph(document)
    return document
