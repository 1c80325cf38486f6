"""The transcoder evaluation's HTML report: every figure of the result on the page, no console errors."""

from __future__ import annotations

import re
from pathlib import Path

from circuitscope.report.transcoders_eval import plot_layer_quality, transcoders_eval_report
from circuitscope.transcoders.evaluate import LayerEval, ReplacementEval, TranscoderEvalResult
from tests.browser import open_in_chromium

RESULT = TranscoderEvalResult(
    layers=[LayerEval(0, 0.125, 4.0, 0.25), LayerEval(1, 0.375, 3.5, 0.0), LayerEval(2, 0.0625, 4.0, 0.5)],
    ce_real=2.5,
    replaced=ReplacementEval(ce=3.25, kl=0.75, agreement=0.625),
    replaced_with_error=ReplacementEval(ce=2.5, kl=1e-7, agreement=1.0),
    tokens=96,
)


def test_the_figure_holds_each_layers_fvu_and_dead_fraction() -> None:
    fig = plot_layer_quality(RESULT)
    fvu, dead = fig.data
    assert list(fvu.x) == ["L0", "L1", "L2"] and list(fvu.y) == [0.125, 0.375, 0.0625]
    assert list(dead.y) == [0.25, 0.0, 0.5]
    assert [c[0] for c in fvu.customdata] == [4.0, 3.5, 4.0]  # L0 in the hover


def test_the_report_opens_without_console_errors_and_shows_every_number(tmp_path: Path) -> None:
    page = transcoders_eval_report(RESULT, "tiny", "tc").write(tmp_path / "eval.html")
    opened = open_in_chromium(page)
    assert opened.console_errors == []
    assert opened.dom.count("main-svg") >= 1  # the figure drew
    cells = re.findall(r'<td class="num">([^<]*)</td>', opened.dom)
    for x in RESULT.layers:  # the per-layer table, as table_html formats floats
        assert f"{x.fvu:.4g}" in cells and f"{x.dead_fraction:.4g}" in cells and f"{x.l0:.4g}" in cells
    for value in (RESULT.ce_real, RESULT.replaced.ce, RESULT.replaced.kl, RESULT.replaced.agreement):
        assert f"{value:.4g}" in cells
    assert "62.5%" in opened.dom and "tc on tiny: 3 layers, 96 evaluation tokens" in opened.dom
