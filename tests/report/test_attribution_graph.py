"""The attribution-graph page's input check and its self-contained HTML (the browser tests are in
test_attribution_graph_browser.py)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from circuitscope.errors import CircuitscopeError
from circuitscope.report.attribution_graph import GraphFormatError, graph_page, validate_graph
from tests.report.attribution_graphs import empty_graph, one_node_graph, synthetic_graph

Graph = dict[str, Any]
_GRAPH = synthetic_graph()


def _embedded(page: str) -> Any:
    """The graph JSON as the browser reads it: the text up to the first closing script tag."""
    start = page.index('<script type="application/json" id="cg-data">') + len(
        '<script type="application/json" id="cg-data">'
    )
    return json.loads(page[start : page.index("</script>", start)])


@pytest.mark.parametrize("make", [synthetic_graph, empty_graph, one_node_graph])
def test_valid_graphs_pass_and_embed_unchanged(make: Callable[[], Graph]) -> None:
    graph = make()
    validate_graph(graph)
    assert _embedded(graph_page(graph, "t")) == graph


def test_the_page_is_self_contained() -> None:
    page = graph_page(synthetic_graph(), "Dallas")
    assert re.search(r"<script[^>]*\bsrc=", page) is None
    assert re.search(r"<link\b", page) is None
    assert "@import" not in page and "url(" not in page  # no fonts or images fetched by the CSS
    assert re.search(r"https?://(?!www\.w3\.org/2000/svg)", page) is None  # the SVG namespace is a name, not a fetch
    assert all(f"var {name} = " in page for name in ("cgModel", "cgPanel")) and "function drawLinks" in page
    assert "#cg-side" in page  # the static JS and CSS are inlined


def test_text_that_closes_the_script_cannot_escape_the_json() -> None:
    graph = one_node_graph()
    graph["nodes"][0]["clerp"] = "</script><script>alert(1)</script><!-- & -->"
    graph["metadata"]["prompt_tokens"] = ["</SCRIPT>"]
    page = graph_page(graph, "</script>")
    assert _embedded(page) == graph
    assert page.count("<script>alert(1)") == 0
    assert "<title>&lt;/script&gt;</title>" in page


def _node(graph: Graph, kind: str) -> dict[str, Any]:
    return next(n for n in graph["nodes"] if n["feature_type"] == kind)


def _set(path: list[Any], value: Any) -> Callable[[Graph], None]:
    def edit(graph: Graph) -> None:
        target: Any = graph
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _set_feature(key: str, value: Any) -> Callable[[Graph], None]:
    return lambda g: _node(g, "cross layer transcoder").__setitem__(key, value)


def _delete(key: str) -> Callable[[Graph], None]:
    return lambda g: g.pop(key)


def _duplicate_id(graph: Graph) -> None:
    graph["nodes"][1]["node_id"] = graph["nodes"][0]["node_id"]


MALFORMED: list[tuple[str, Callable[[Graph], None], str]] = [
    ("no links", _delete("links"), "graph has no 'links'"),
    ("no metadata", _delete("metadata"), "graph has no 'metadata'"),
    ("tokens not strings", _set(["metadata", "prompt_tokens"], [1, 2]), "['metadata']['prompt_tokens'] must be"),
    ("nodes not a list", _set(["nodes"], {}), "graph['nodes'] must be a list"),
    ("unknown type", _set_feature("feature_type", "transcoder"), "is 'transcoder', not one of"),
    ("layer not a number", _set_feature("layer", "L3"), "is 'L3', not a layer number"),
    ("position past the prompt", _set_feature("ctx_idx", 9), "is 9, not a position of the 9 prompt tokens"),
    ("position a float", _set_feature("ctx_idx", 1.0), "is 1.0, not a position"),
    ("no node_id", _set_feature("node_id", ""), "['node_id'] is '', not a non-empty string"),
    ("NaN activation", _set_feature("activation", float("nan")), "is nan, not a finite number"),
    ("bool influence", _set_feature("influence", True), "is True, not a finite number"),
    ("duplicate id", _duplicate_id, "is used by an earlier node"),
    ("dangling link", _set(["links", 0, "target"], "nope"), "['links'][0]['target'] is 'nope', which is not a node_id"),
    ("infinite weight", _set(["links", 3, "weight"], float("inf")), "['links'][3]['weight'] is inf"),
    ("unknown pinned id", _set(["qParams", "pinnedIds"], ["nope"]), "names 'nope', which is not a node_id"),
    ("supernode without members", _set(["qParams", "supernodes"], [["name"]]), "not [name, node_id, ...]"),
    ("bad top_logits", _set_feature("top_logits", [{"token": 3, "effect": 1.0}]), "['top_logits'][0]"),
    (
        "context lengths differ",
        _set_feature("top_contexts", [{"tokens": ["a", "b"], "activations": [1.0]}]),
        "has 2 tokens but 1 activations",
    ),
]


@pytest.mark.parametrize(("edit", "message"), [(e, m) for _, e, m in MALFORMED], ids=[n for n, _, _ in MALFORMED])
def test_malformed_graphs_are_refused_with_the_field_named(edit: Callable[[Graph], None], message: str) -> None:
    graph = copy.deepcopy(_GRAPH)
    edit(graph)
    with pytest.raises(GraphFormatError) as caught:
        graph_page(graph, "t")
    assert message in str(caught.value)
    assert "circuitscope.graphs" in str(caught.value)  # says how to fix it
    assert isinstance(caught.value, CircuitscopeError) and isinstance(caught.value, ValueError)


def test_a_non_object_is_refused() -> None:
    with pytest.raises(GraphFormatError, match="is a list, not an object"):
        validate_graph([])


def test_circuit_tracers_comma_separated_pinned_ids_are_accepted() -> None:
    graph = synthetic_graph()
    graph["qParams"]["pinnedIds"] = ",".join(n["node_id"] for n in graph["nodes"][:3])
    validate_graph(graph)
    graph["qParams"]["pinnedIds"] += ",missing"
    with pytest.raises(GraphFormatError, match="'missing'"):
        validate_graph(graph)
