"""How the attribution-graph page (graph.html) scales with the number of links, in headless Chromium.

For seeded synthetic graphs of growing size (tests/report/attribution_graphs.py), one browser, side by side:
the time from navigation until the page has drawn (parse the JSON, lay out, draw every link), one redraw of
the links after a filter change, a hover highlight and a click that fills the side panel. Prints each
size's times and their ratio to the smallest graph's.

    .venv/bin/python benchmarks/bench_graph_viewer.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import Page, sync_playwright
from tests.browser import chromium
from tests.report.attribution_graphs import synthetic_graph

from circuitscope.report.attribution_graph import graph_page

SIZES = [(6, 5, 12), (18, 8, 20), (18, 12, 40)]  # (layers, features per cell, sources per target)

_IN_PAGE = """() => {
  const t = (f) => { const a = performance.now(); f(); return performance.now() - a; };
  const slider = document.getElementById('cg-threshold');
  const node = document.querySelector('.cg-node.t-feature');
  return {
    redraw: t(() => { slider.value = 0; slider.dispatchEvent(new Event('input')); }),
    hover: t(() => node.dispatchEvent(new MouseEvent('mouseover', {bubbles: true}))),
    click: t(() => node.dispatchEvent(new MouseEvent('click', {bubbles: true}))),
  };
}"""


def _measure(page: Page, path: Path) -> dict[str, float]:
    start = time.perf_counter()
    page.goto(path.as_uri())
    page.wait_for_selector("html[data-cg-ready]", state="attached")
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")  # painted
    ready = (time.perf_counter() - start) * 1000
    return {"open": ready, **page.evaluate(_IN_PAGE)}


def main() -> None:
    parser = argparse.ArgumentParser(description="Time graph.html by graph size in headless Chromium.")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} (1-minute average); {args.repeats} repeats, medians in ms")
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        pages = []
        for layers, per_cell, sources in SIZES:
            graph = synthetic_graph(n_layers=layers, features_per_cell=per_cell, max_sources=sources)
            path = Path(folder) / f"g{len(pages)}.html"
            path.write_text(graph_page(graph, "bench"), encoding="utf-8")
            pages.append((len(graph["nodes"]), len(graph["links"]), path))
        runs: list[list[dict[str, float]]] = [[] for _ in pages]
        for _ in range(args.repeats):  # sizes interleaved, so a change of load hits all of them
            for i, (_, _, path) in enumerate(pages):
                runs[i].append(_measure(page, path))
        browser.close()
    keys = ["open", "redraw", "hover", "click"]
    base = {k: statistics.median(r[k] for r in runs[0]) for k in keys}
    print(f"{'nodes':>6} {'links':>6} " + " ".join(f"{k:>16}" for k in keys))
    for (n_nodes, n_links, _), measured in zip(pages, runs, strict=True):
        cells = []
        for k in keys:
            median = statistics.median(r[k] for r in measured)
            cells.append(f"{median:8.1f} ({median / base[k]:4.1f}x)")
        print(f"{n_nodes:>6} {n_links:>6} " + " ".join(f"{c:>16}" for c in cells))
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
