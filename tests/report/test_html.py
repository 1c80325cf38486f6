"""Reports are self-contained and open in headless Chromium without console errors."""

from __future__ import annotations

import re
from pathlib import Path

import plotly.graph_objects as go
import pytest

from circuitscope.report import Report
from tests.browser import open_in_chromium


def _report() -> Report:
    report = Report("A test report", "tiny model · 3 prompts")
    report.add_kpis("Headline", {"logit diff": "3.21", "accuracy": "100%"})
    report.add_figure("Heatmap", go.Figure(go.Heatmap(z=[[1, 2], [3, 4]])), caption="a heatmap")
    report.add_table("Table", ["head", "score"], [["L0H1", 0.5], ["L1H0", 2]])
    report.add_text("Notes", ["<b>escaped</b>", "second paragraph"])
    return report


def test_report_is_self_contained_and_atomic(tmp_path: Path) -> None:
    path = _report().write(tmp_path / "out" / "r.html")
    text = path.read_text()
    assert re.search(r"<script[^>]*\bsrc=", text) is None  # plotly.js is inlined, not fetched
    assert re.search(r"<link[^>]*\bhref=", text) is None
    assert text.count("Plotly.newPlot") == 1
    assert "&lt;b&gt;escaped&lt;/b&gt;" in text
    assert [p.name for p in path.parent.iterdir()] == ["r.html"]  # no temporary file left behind


def test_a_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = _report()

    def boom() -> str:
        raise RuntimeError("render failed")

    monkeypatch.setattr(report, "to_html", boom)
    with pytest.raises(RuntimeError):
        report.write(tmp_path / "r.html")
    assert list(tmp_path.iterdir()) == []


def test_report_opens_in_chromium_without_console_errors(tmp_path: Path) -> None:
    result = open_in_chromium(_report().write(tmp_path / "r.html"))
    assert result.console_errors == []
    assert "main-svg" in result.dom  # plotly drew the figure


def test_the_browser_check_catches_a_broken_page(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    assert open_in_chromium(page).console_errors != []
