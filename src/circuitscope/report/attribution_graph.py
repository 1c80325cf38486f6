"""The interactive attribution-graph page (``graph.html``): one self-contained page for a graph in
circuit-tracer's graph JSON (the format circuit-tracer's and Neuronpedia's viewers load).

Nodes are laid out by layer (rows: embeddings at the bottom, logits at the top) and token position
(columns); edges are drawn with thickness by ``|weight|`` and colour by sign. Clicking a node lists its
incoming and outgoing edges, its top activating contexts and its top logit effects; nodes can be pinned
into a subgraph, grouped into named supernodes and exported as ``{"qParams": {"pinnedIds", "supernodes",
...}}``, which the page reopens (put it in the graph's ``qParams``, or open the file from the page).

The viewer's JavaScript and CSS are package files (``report/static/``), inlined into the page: no CDN,
no network, no external fonts.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any, Literal, TypeGuard, get_args

from circuitscope.errors import CircuitscopeError
from circuitscope.report.html import page_html

__all__ = ["FeatureType", "GraphFormatError", "graph_page", "validate_graph"]

FeatureType = Literal["cross layer transcoder", "mlp reconstruction error", "embedding", "logit"]
"""The node kinds of circuit-tracer's graph JSON."""

_FIX = "write the graph with circuitscope.graphs (or circuit-tracer's create_graph_files) and pass it unchanged"


class GraphFormatError(CircuitscopeError, ValueError):
    """A graph that is not circuit-tracer's graph JSON (the message names the field and what it should be)."""


def _fail(where: str, problem: str) -> GraphFormatError:
    return GraphFormatError(f"graph{where} {problem}; {_FIX}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _layer_number(value: Any) -> bool:
    if _is_int(value):
        return True
    return isinstance(value, str) and value.lstrip("-").isdigit()


def _check_metadata(metadata: Any) -> int:
    """The number of prompt tokens."""
    if not isinstance(metadata, dict):
        raise _fail("['metadata']", f"is a {type(metadata).__name__}, not an object")
    tokens = metadata.get("prompt_tokens")
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise _fail("['metadata']['prompt_tokens']", "must be a list of strings (the prompt's tokens, in order)")
    if not isinstance(metadata.get("prompt", ""), str):
        raise _fail("['metadata']['prompt']", "must be a string")
    threshold = metadata.get("node_threshold")
    if threshold is not None and not _is_number(threshold):
        raise _fail("['metadata']['node_threshold']", f"is {threshold!r}, not a number or null")
    return len(tokens)


def _check_optional_number(node: dict[str, Any], key: str, where: str) -> None:
    value = node.get(key)
    if value is not None and not _is_number(value):
        raise _fail(f"{where}['{key}']", f"is {value!r}, not a finite number or null")


def _check_extras(node: dict[str, Any], where: str) -> None:
    """circuitscope's optional fields: ``top_logits`` and ``top_contexts``."""
    logits = node.get("top_logits", [])
    if not isinstance(logits, list):
        raise _fail(f"{where}['top_logits']", 'must be a list of {"token": str, "effect": number}')
    for j, item in enumerate(logits):
        if not (isinstance(item, dict) and isinstance(item.get("token"), str) and _is_number(item.get("effect"))):
            raise _fail(f"{where}['top_logits'][{j}]", f'is {item!r}, not {{"token": str, "effect": number}}')
    contexts = node.get("top_contexts", [])
    if not isinstance(contexts, list):
        raise _fail(f"{where}['top_contexts']", 'must be a list of {"tokens": [str], "activations": [number]}')
    for j, item in enumerate(contexts):
        at = f"{where}['top_contexts'][{j}]"
        if not isinstance(item, dict):
            raise _fail(at, 'must be {"tokens": [str], "activations": [number]}')
        tokens, acts = item.get("tokens"), item.get("activations")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise _fail(f"{at}['tokens']", "must be a list of strings")
        if not isinstance(acts, list) or not all(_is_number(a) for a in acts):
            raise _fail(f"{at}['activations']", "must be a list of finite numbers")
        if len(tokens) != len(acts):
            raise _fail(at, f"has {len(tokens)} tokens but {len(acts)} activations (one activation per token)")


def _check_node(node: Any, i: int, n_tokens: int) -> str:
    """The node's id."""
    where = f"['nodes'][{i}]"
    if not isinstance(node, dict):
        raise _fail(where, f"is a {type(node).__name__}, not an object")
    node_id = node.get("node_id")
    if not isinstance(node_id, str) or not node_id:
        raise _fail(f"{where}['node_id']", f"is {node_id!r}, not a non-empty string")
    kind = node.get("feature_type")
    if kind not in get_args(FeatureType):
        raise _fail(
            f"{where}['feature_type']", f"is {kind!r}, not one of {', '.join(map(repr, get_args(FeatureType)))}"
        )
    layer = node.get("layer")
    if kind == "embedding" and not isinstance(layer, (str, int)):
        raise _fail(f"{where}['layer']", f'is {layer!r}; an embedding\'s layer is "E"')
    if kind != "embedding" and not _layer_number(layer):
        raise _fail(f"{where}['layer']", f"is {layer!r}, not a layer number (an int or a string of digits)")
    ctx = node.get("ctx_idx")
    if not _is_int(ctx) or not 0 <= ctx < n_tokens:
        raise _fail(f"{where}['ctx_idx']", f"is {ctx!r}, not a position of the {n_tokens} prompt tokens")
    feature = node.get("feature")
    if feature is not None and not _is_int(feature):
        raise _fail(f"{where}['feature']", f"is {feature!r}, not an int")
    for key in ("token_prob", "influence", "activation"):
        _check_optional_number(node, key, where)
    for key in ("clerp", "jsNodeId"):
        if not isinstance(node.get(key, ""), str):
            raise _fail(f"{where}['{key}']", "must be a string")
    if not isinstance(node.get("is_target_logit", False), bool):
        raise _fail(f"{where}['is_target_logit']", "must be true or false")
    _check_extras(node, where)
    return node_id


def _check_ids(value: Any, where: str, ids: set[str]) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(where, "must be a list of node ids (strings)")
    unknown = [v for v in value if v not in ids]
    if unknown:
        raise _fail(where, f"names {unknown[0]!r}, which is not a node_id of this graph")


def _check_qparams(params: Any, ids: set[str]) -> None:
    if not isinstance(params, dict):
        raise _fail("['qParams']", f"is a {type(params).__name__}, not an object")
    pinned = params.get("pinnedIds") or []  # null: none, as circuit-tracer reads it
    if isinstance(pinned, str):  # circuit-tracer's URL form: comma-separated
        pinned = [p for p in pinned.split(",") if p]
    _check_ids(pinned, "['qParams']['pinnedIds']", ids)
    supernodes = params.get("supernodes") or []
    if not isinstance(supernodes, list):
        raise _fail("['qParams']['supernodes']", "must be a list of [name, node_id, ...] lists")
    for j, group in enumerate(supernodes):
        at = f"['qParams']['supernodes'][{j}]"
        if not isinstance(group, list) or len(group) < 2 or not isinstance(group[0], str):
            raise _fail(at, f"is {group!r}, not [name, node_id, ...] (a name, then at least one member)")
        _check_ids(group[1:], at, ids)


def validate_graph(graph: Any) -> None:
    """Raise :class:`GraphFormatError` unless ``graph`` is circuit-tracer's graph JSON: ``metadata`` with
    ``prompt_tokens``, ``nodes`` (unique ``node_id``, a known ``feature_type``, a layer, a ``ctx_idx``
    inside the prompt), ``links`` between known nodes with finite weights, and an optional ``qParams``
    whose pinned ids and supernodes name known nodes."""
    if not isinstance(graph, dict):
        raise _fail("", f"is a {type(graph).__name__}, not an object with metadata, nodes and links")
    for key in ("metadata", "nodes", "links"):
        if key not in graph:
            raise _fail("", f"has no {key!r}")
    n_tokens = _check_metadata(graph["metadata"])
    nodes, links = graph["nodes"], graph["links"]
    if not isinstance(nodes, list):
        raise _fail("['nodes']", "must be a list")
    ids: set[str] = set()
    for i, node in enumerate(nodes):
        node_id = _check_node(node, i, n_tokens)
        if node_id in ids:
            raise _fail(
                f"['nodes'][{i}]['node_id']",
                f"{node_id!r} is used by an earlier node: ids must be unique, links name nodes by id (circuit-tracer's"
                " ids give a layer-0 feature k and the error node of layer k at one position the same id, '0_k_pos')",
            )
        ids.add(node_id)
    if not isinstance(links, list):
        raise _fail("['links']", "must be a list")
    for i, link in enumerate(links):
        where = f"['links'][{i}]"
        if not isinstance(link, dict):
            raise _fail(where, 'must be {"source": node_id, "target": node_id, "weight": number}')
        for end in ("source", "target"):
            if link.get(end) not in ids:
                raise _fail(f"{where}['{end}']", f"is {link.get(end)!r}, which is not a node_id of this graph")
        if not _is_number(link.get("weight")):
            raise _fail(f"{where}['weight']", f"is {link.get('weight')!r}, not a finite number")
    if graph.get("qParams") is not None:
        _check_qparams(graph["qParams"], ids)


def _static(name: str) -> str:
    text = resources.files("circuitscope.report").joinpath("static").joinpath(name).read_text("utf-8")
    if "</script" in text.lower() or "</style" in text.lower():  # would end the inline element early
        raise RuntimeError(f"report/static/{name} contains a closing tag; it cannot be inlined")
    return text


def _script_json(payload: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">`` (no ``</script>``, no ``<!--``)."""
    text = json.dumps(payload, allow_nan=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


_SCRIPTS = ("graph_model.js", "graph_panel.js", "graph_viewer.js")
"""The viewer's scripts, in load order (each builds on the ones before). Its markup, the element ids the
scripts read, is ``graph_body.html`` (the explorer's graph frame, serve/static, loads the same file)."""


def graph_page(graph: dict[str, Any], title: str) -> str:
    """One self-contained interactive HTML page for ``graph`` (circuit-tracer's graph JSON, validated by
    :func:`validate_graph`; circuitscope's optional node fields ``top_logits`` and ``top_contexts`` are shown
    in the side panel). The page opens offline: the viewer's JS and CSS are inlined, nothing is fetched."""
    validate_graph(graph)
    metadata = graph["metadata"]
    subtitle = f"{len(graph['nodes'])} nodes · {len(graph['links'])} links"
    if metadata.get("prompt"):
        subtitle = f"{metadata['prompt']!r} · {subtitle}"
    data = f'<script type="application/json" id="cg-data">{_script_json(graph)}</script>'
    body = _static("graph_body.html") + data + "".join(f"<script>{_static(name)}</script>" for name in _SCRIPTS)
    return page_html(title, subtitle, body, head=f"<style>{_static('graph_viewer.css')}</style>")
