"""The attribution-graph page in headless Chromium (Playwright driving Debian's chromium): it opens without
console errors, a click lists the node's edges from the JSON, pinning and grouping export the expected
qParams, an export reopens, and the edge filter counts what it keeps."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from circuitscope.report.attribution_graph import graph_page
from tests.browser import chromium
from tests.report.attribution_graphs import empty_graph, one_node_graph, synthetic_graph

Graph = dict[str, Any]
WIDTH, HEIGHT = 1280, 800


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


class Opened:
    def __init__(self, page: Page, errors: list[str]) -> None:
        self.page = page
        self.errors = errors


@pytest.fixture
def open_graph(browser: Browser, tmp_path: Path) -> Iterator[Callable[[Graph], Opened]]:
    contexts = []

    def open_(graph: Graph) -> Opened:
        path = tmp_path / f"graph{len(contexts)}.html"
        path.write_text(graph_page(graph, "Attribution graph"), encoding="utf-8")
        context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}, accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri())
        page.wait_for_selector("html[data-cg-ready]", state="attached")
        return Opened(page, errors)

    yield open_
    for context in contexts:
        context.close()


GRAPH = synthetic_graph()


def _edges(graph: Graph, node_id: str) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(source, weight) of the incoming and (target, weight) of the outgoing links, by |weight| descending."""
    incoming = [(x["source"], x["weight"]) for x in graph["links"] if x["target"] == node_id]
    outgoing = [(x["target"], x["weight"]) for x in graph["links"] if x["source"] == node_id]
    return sorted(incoming, key=lambda e: -abs(e[1])), sorted(outgoing, key=lambda e: -abs(e[1]))


def _panel_edges(page: Page, kind: str) -> list[tuple[str, float]]:
    pairs = page.eval_on_selector_all(
        f'#cg-panel ol[data-kind="{kind}"] button',
        "bs => bs.map(b => [b.getAttribute('data-id'), b.getAttribute('data-weight')])",
    )
    return [(i, float(w)) for i, w in pairs]


def _busy_feature(graph: Graph) -> str:
    """A feature with incoming and outgoing links (the one with most links)."""
    features = [n["node_id"] for n in graph["nodes"] if n["feature_type"] == "cross layer transcoder"]
    return max(features, key=lambda f: min(len(e) for e in _edges(graph, f)) * 100 + sum(map(len, _edges(graph, f))))


@pytest.mark.parametrize("make", [synthetic_graph, empty_graph, one_node_graph])
def test_the_page_opens_without_console_errors(
    open_graph: Callable[[Graph], Opened], make: Callable[[], Graph]
) -> None:
    graph = make()
    opened = open_graph(graph)
    assert opened.errors == []
    assert opened.page.locator(".cg-node").count() == len(graph["nodes"])
    assert opened.page.get_attribute("#cg-link-count", "data-shown") == str(len(graph["links"]))


def test_every_node_and_the_panel_fit_at_1280x800(open_graph: Callable[[Graph], Opened]) -> None:
    page = open_graph(GRAPH).page
    boxes = page.eval_on_selector_all(
        ".cg-node, #cg-panel, #cg-controls, #cg-sub",
        "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })",
    )
    assert all(left >= 0 and right <= WIDTH and top >= 0 and bottom <= HEIGHT for left, top, right, bottom in boxes)
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH  # no horizontal scrolling


def test_clicking_a_node_lists_its_edges_from_the_json(open_graph: Callable[[Graph], Opened]) -> None:
    page = open_graph(GRAPH).page
    node = _busy_feature(GRAPH)
    page.click(f'.cg-node[data-id="{node}"]')
    incoming, outgoing = _edges(GRAPH, node)
    assert incoming and outgoing
    assert _panel_edges(page, "incoming") == incoming
    assert _panel_edges(page, "outgoing") == outgoing
    contexts = next(n for n in GRAPH["nodes"] if n["node_id"] == node)["top_contexts"]
    assert page.locator("#cg-panel .cg-ctx").count() == len(contexts)
    assert page.locator("#cg-panel .cg-logits tr").count() == 3
    page.click(f'#cg-panel ol[data-kind="incoming"] button[data-id="{incoming[0][0]}"]')  # follow the strongest edge
    assert (node, incoming[0][1]) in _panel_edges(page, "outgoing")
    assert _panel_edges(page, "incoming") == _edges(GRAPH, incoming[0][0])[0]


def test_hovering_or_focusing_a_node_highlights_exactly_its_edges(open_graph: Callable[[Graph], Opened]) -> None:
    page = open_graph(GRAPH).page
    node = _busy_feature(GRAPH)
    page.hover(f'.cg-node[data-id="{node}"]')
    drawn = page.eval_on_selector_all(
        ".cg-hl line", "ls => ls.map(l => [l.getAttribute('data-source'), l.getAttribute('data-target')])"
    )
    expected = [(x["source"], x["target"]) for x in GRAPH["links"] if node in (x["source"], x["target"])]
    assert sorted(map(tuple, drawn)) == sorted(expected)
    page.focus(f'.cg-node[data-id="{node}"]')  # the keyboard way: focus (Tab) and Enter
    page.keyboard.press("Enter")
    assert _panel_edges(page, "incoming") == _edges(GRAPH, node)[0]
    other = _edges(GRAPH, node)[1][0][0]
    page.fill("#cg-find", other)  # or find it by id
    page.keyboard.press("Enter")
    assert _panel_edges(page, "incoming") == _edges(GRAPH, other)[0]


def _pin_and_group(page: Page) -> tuple[str, str, str]:
    """Pin two sources of one target and the target (by button, by keyboard, by button), then group the two."""
    target = _busy_feature(GRAPH)
    sources = [s for s, _ in _edges(GRAPH, target)[0]]
    linked = [(x["source"], x["target"]) for x in GRAPH["links"] if {x["source"], x["target"]} <= set(sources)]
    a, b = linked[0]  # two sources linked to each other: the link inside the supernode must be dropped
    page.click(f'.cg-node[data-id="{a}"]')
    page.click("#cg-pin")
    page.focus(f'.cg-node[data-id="{b}"]')
    page.keyboard.press("p")
    page.click(f'.cg-node[data-id="{target}"]')
    page.click("#cg-pin")
    page.check(f'#cg-pinned input[data-id="{a}"]')
    page.check(f'#cg-pinned input[data-id="{b}"]')
    page.fill("#cg-sn-name", "Texas")
    page.click("#cg-group")
    return a, b, target


def _state(page: Page) -> tuple[list[str], list[str | None], list[str]]:
    pinned = page.eval_on_selector_all("#cg-pinned input", "cs => cs.map(c => c.getAttribute('data-id'))")
    groups = page.eval_on_selector_all("#cg-supernodes li", "ls => ls.map(l => l.getAttribute('data-supernode'))")
    sub = page.eval_on_selector_all(".cg-sg-node", "gs => gs.map(g => g.getAttribute('data-id'))")
    return pinned, groups, sorted(sub)


def test_pinning_and_grouping_export_qparams_that_reopen(open_graph: Callable[[Graph], Opened], tmp_path: Path) -> None:
    opened = open_graph(GRAPH)
    page = opened.page
    a, b, target = _pin_and_group(page)
    expected_state = ([target], ["Texas"], sorted(["supernode-0", target]))
    assert _state(page) == expected_state
    summed = sum(x["weight"] for x in GRAPH["links"] if x["source"] in (a, b) and x["target"] == target)
    drawn = page.eval_on_selector_all(
        ".cg-sg-edge", "es => es.map(e => [e.dataset.source, e.dataset.target, Number(e.dataset.weight)])"
    )
    assert len(drawn) == 1 and drawn[0][:2] == ["supernode-0", target]  # a -> b, inside the supernode, is not drawn
    assert drawn[0][2] == pytest.approx(summed, rel=1e-12)
    with page.expect_download() as download:
        page.click("#cg-export")
    text = Path(download.value.path()).read_text()
    assert json.loads(text) == {
        "metadata": {"slug": "dallas-test", "prompt": GRAPH["metadata"]["prompt"]},
        "qParams": {
            "pinnedIds": [a, b, target],
            "supernodes": [["Texas", a, b]],
            "linkType": "both",
            "clickedId": target,
            "sg_pos": "",
        },
    }
    assert opened.errors == []

    reopened = open_graph(dict(GRAPH, qParams=json.loads(text)["qParams"])).page  # as the graph's own qParams
    assert _state(reopened) == expected_state
    assert reopened.locator(".cg-node.cg-pinned").count() == 3
    assert reopened.get_attribute(".cg-node.cg-selected", "data-id") == target  # clickedId reopens the panel

    (tmp_path / "subgraph.json").write_text(text)  # through the page's "Open subgraph JSON"
    page.click("#cg-clear")
    assert _state(page) == ([], [], [])
    page.set_input_files("#cg-import", tmp_path / "subgraph.json")
    page.wait_for_function("document.getElementById('cg-msg').textContent.startsWith('Opened')")
    assert _state(page) == expected_state


def test_a_subgraph_of_another_graph_is_not_opened(open_graph: Callable[[Graph], Opened], tmp_path: Path) -> None:
    opened = open_graph(GRAPH)
    (tmp_path / "other.json").write_text(json.dumps({"qParams": {"pinnedIds": ["x_1_2"], "supernodes": []}}))
    opened.page.set_input_files("#cg-import", tmp_path / "other.json")
    opened.page.wait_for_function("document.getElementById('cg-msg').textContent.startsWith('Not opened')")
    assert "x_1_2" in (opened.page.text_content("#cg-msg") or "")
    assert _state(opened.page)[0] == [] and opened.errors == []


def test_the_weight_filter_keeps_the_links_at_or_above_it(open_graph: Callable[[Graph], Opened]) -> None:
    page = open_graph(GRAPH).page
    page.eval_on_selector("#cg-threshold", "s => { s.value = 500; s.dispatchEvent(new Event('input')); }")
    threshold = float(page.get_attribute("#cg-threshold-value", "data-threshold") or "nan")
    weights = [abs(x["weight"]) for x in GRAPH["links"]]
    assert threshold == pytest.approx(max(weights) / 4, rel=1e-12)
    kept = sum(w >= threshold for w in weights)
    assert 0 < kept < len(weights)
    assert page.get_attribute("#cg-link-count", "data-shown") == str(kept)
