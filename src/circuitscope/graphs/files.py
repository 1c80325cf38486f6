"""Graph files: the JSON circuit-tracer's and Neuronpedia's graph viewers load, and the kept subgraph.

:func:`graph_json` writes the pruned graph exactly as circuit-tracer's ``create_graph_files`` does
(``metadata``, ``qParams``, ``nodes``, ``links``; node ids, ``jsNodeId``s, feature types and the logit nodes'
``clerp`` as it makes them; one exception: circuit-tracer names the error node of layer ``l`` at position ``p``
``0_l_p``, the id of layer 0's feature ``l`` at ``p``, so circuitscope names it ``err_l_p``: the viewers treat
ids as opaque keys, which must be unique), with two optional circuitscope fields per node that circuitscope's
viewer shows:
``top_logits`` (``[{"token", "effect"}]``, a feature's direct effect on the centred logits through its
decoder) and ``top_contexts`` (``[{"tokens", "activations"}]``, given by the caller from a corpus).

:func:`write_subgraph` keeps the nodes a user chose (and the links among them) in a versioned
``circuitscope.graph-subset`` file; :func:`read_subgraph` reads one back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from circuitscope.core.files import atomic_write_json, read_json_object
from circuitscope.errors import LoadError
from circuitscope.graphs.errors import GraphInputError
from circuitscope.graphs.graph import AttributionGraph, GraphNode
from circuitscope.graphs.prune import PrunedGraph

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel
    from circuitscope.transcoders.modules import TranscoderSet

__all__ = [
    "EXTRA_FIELDS",
    "SUBGRAPH_FORMAT",
    "SUBGRAPH_VERSION",
    "NodeExtras",
    "feature_top_logits",
    "graph_json",
    "node_id",
    "process_token",
    "read_subgraph",
    "write_subgraph",
]

SUBGRAPH_FORMAT = "circuitscope.graph-subset"
SUBGRAPH_VERSION = 1


def process_token(token: str) -> str:
    """A token as the viewers show it (circuit-tracer's ``process_token``)."""
    return token.replace("\n", "⏎").replace("\t", "→").replace("\r", "↵")


def node_id(node: GraphNode, n_layers: int) -> str:
    """The node's ``node_id`` as circuit-tracer makes it, except an error node's (see the module)."""
    if node.kind == "feature":
        return f"{node.layer}_{node.index}_{node.position}"
    if node.kind == "error":
        return f"err_{node.layer}_{node.position}"
    if node.kind == "embedding":
        return f"E_{node.index}_{node.position}"
    return f"{n_layers + 1}_{node.index}_{node.position}"


def _viewer_node(node: GraphNode, n_layers: int, influence: float, target: bool) -> dict[str, Any]:
    base: dict[str, Any] = {
        "node_id": node_id(node, n_layers),
        "token_prob": 0.0,
        "is_target_logit": False,
        "run_idx": 0,
        "reverse_ctx_idx": 0,
        "clerp": "",
        "influence": influence,
        "activation": None,
        "ctx_idx": node.position,
    }
    if node.kind == "feature":
        base |= {
            "feature": node.index,
            "layer": str(node.layer),
            "feature_type": "cross layer transcoder",
            "jsNodeId": f"{node.layer}_{node.index}-0",
            "activation": node.activation,
        }
    elif node.kind == "error":
        base |= {
            "feature": -1,
            "layer": str(node.layer),
            "feature_type": "mlp reconstruction error",
            "jsNodeId": f"{node.layer}_{node.position}-0",
        }
    elif node.kind == "embedding":
        base |= {
            "feature": node.position,
            "layer": "E",
            "feature_type": "embedding",
            "jsNodeId": f"E_{node.index}-{node.position}",
        }
    else:
        token = process_token(node.token)
        base |= {
            "feature": node.index,
            "layer": str(n_layers + 1),
            "feature_type": "logit",
            "token_prob": node.probability,
            "is_target_logit": target,
            "jsNodeId": f"L_{node.index}-{node.position}",
            "clerp": f'Output "{token}" (p={node.probability:.3f})',
            "influence": None,
        }
    return base


NodeExtras = Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]]
"""Per ``node_id``, circuitscope's optional fields: ``{"top_logits": [...], "top_contexts": [...]}``."""
EXTRA_FIELDS = ("top_logits", "top_contexts")


def graph_json(
    graph: AttributionGraph, pruned: PrunedGraph, slug: str = "graph", extras: NodeExtras | None = None
) -> dict[str, Any]:
    """The viewer JSON of the pruned graph (``extras``: optional fields of some nodes, by ``node_id``)."""
    n_layers = graph.n_layers
    kept = torch.nonzero(pruned.node_mask).flatten().tolist()
    first_logit = next(i for i, n in enumerate(graph.nodes) if n.kind == "logit")
    nodes: dict[int, dict[str, Any]] = {}
    for i in kept:
        node = graph.nodes[i]
        entry = _viewer_node(node, n_layers, float(pruned.cumulative_influence[i]), i == first_logit)
        more = (extras or {}).get(entry["node_id"], {})
        entry |= {key: [dict(x) for x in more[key]] for key in EXTRA_FIELDS if key in more}
        nodes[i] = entry
    mask = pruned.edge_mask & (graph.adjacency != 0)
    targets, sources = torch.nonzero(mask, as_tuple=True)
    links = [
        {"source": nodes[s]["node_id"], "target": nodes[t]["node_id"], "weight": float(graph.adjacency[t, s])}
        for t, s in zip(targets.tolist(), sources.tolist(), strict=True)
        if s in nodes and t in nodes
    ]
    connected = {x for link in links for x in (link["source"], link["target"])}
    used = [n for n in nodes.values() if n["node_id"] in connected or n["feature_type"] in ("embedding", "logit")]
    return {
        "metadata": {
            "slug": slug,
            "scan": graph.transcoders_name or "custom",
            "transcoder_list": [],
            "prompt_tokens": [process_token(t) for t in graph.str_tokens],
            "prompt": graph.prompt,
            "node_threshold": pruned.node_threshold,
        },
        "qParams": {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""},
        "nodes": used,
        "links": links,
    }


def feature_top_logits(
    model: HookedModel, transcoders: TranscoderSet, features: Iterable[tuple[int, int]], k: int = 5
) -> dict[tuple[int, int], list[dict[str, Any]]]:
    """Per (layer, index): the ``k`` tokens whose centred logits its decoder (summed over the layers it writes
    to) raises most, with the effect per unit of activation (the final norm's scale left out)."""
    w_u = model.W_U.detach()
    centred = w_u - w_u.mean(1, keepdim=True)
    out: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for layer, index in features:
        row = sum(dec[index].detach() for _, dec in transcoders.decoders(layer))
        assert isinstance(row, torch.Tensor)
        effects = row.to(centred.dtype) @ centred
        top = torch.topk(effects, min(k, effects.shape[0]))
        texts = [model.tokenizer.decode([t]) if model.tokenizer is not None else str(t) for t in top.indices.tolist()]
        out[layer, index] = [
            {"token": process_token(text), "effect": float(v)} for text, v in zip(texts, top.values, strict=True)
        ]
    return out


def write_subgraph(
    path: Path, graph_file: Mapping[str, Any], keep: Iterable[str], supernodes: Sequence[Sequence[str]] = ()
) -> dict[str, Any]:
    """Keep the nodes ``keep`` (node ids of ``graph_file``, a :func:`graph_json` document) and the links among them
    in a versioned subgraph file; returns what it wrote. Unknown ids are refused."""
    wanted = list(dict.fromkeys(keep))
    known = {n["node_id"]: n for n in graph_file["nodes"]}
    missing = [w for w in wanted if w not in known]
    if missing:
        raise GraphInputError(f"node ids {missing[:5]} are not in the graph; pick ids from its 'nodes'")
    chosen = set(wanted)
    payload = {
        "format": SUBGRAPH_FORMAT,
        "version": SUBGRAPH_VERSION,
        "metadata": dict(graph_file["metadata"]),
        "nodes": [known[w] for w in wanted],
        "links": [dict(x) for x in graph_file["links"] if x["source"] in chosen and x["target"] in chosen],
        "supernodes": [list(s) for s in supernodes],
    }
    atomic_write_json(Path(path), payload, indent=1)
    return payload


def read_subgraph(path: Path) -> dict[str, Any]:
    """A subgraph file written by :func:`write_subgraph` (a :class:`LoadError` for another file or version)."""
    data = read_json_object(Path(path), LoadError)
    if data.get("format") != SUBGRAPH_FORMAT:
        raise LoadError(f"{path} is not a {SUBGRAPH_FORMAT} file; write one with write_subgraph")
    if data.get("version") != SUBGRAPH_VERSION:
        raise LoadError(
            f"{path} is version {data.get('version')!r} of {SUBGRAPH_FORMAT}; this circuitscope reads version "
            f"{SUBGRAPH_VERSION}: upgrade circuitscope or write the file again"
        )
    return data
