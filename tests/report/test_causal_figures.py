"""What a reader of the causal report needs: position roles, named scatter points, readable logit-lens cells."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from circuitscope.analysis._logit_lens import LogitLensResult
from circuitscope.analysis.attribution import AttributionCorrelation
from circuitscope.analysis.causal import HeadSummary
from circuitscope.report.causal import attention_summary
from circuitscope.report.figures import component_names
from circuitscope.report.logit_lens import plot_top_tokens
from circuitscope.report.patching import plot_attribution_scatter
from circuitscope.report.roles import labelled_positions, position_roles


def test_ioi_roles_are_read_off_the_tokens_and_answers() -> None:
    # <bos> When Mary and John went , John gave to   (IO = Mary = 7, S = John = 9)
    tokens = [1, 5, 7, 8, 9, 10, 11, 9, 12, 13]
    roles = position_roles(tokens, correct=7, incorrect=9, end=9, ioi=True)
    assert roles == {2: "IO", 4: "S1", 5: "S1+1", 7: "S2", 9: "END"}
    other = position_roles(tokens, correct=7, incorrect=9, end=9, ioi=False)
    assert other == {2: "correct", 4: "incorrect", 7: "incorrect", 9: "END"}
    labels = labelled_positions(["<bos>", " When", " Mary"], {2: "IO"})
    assert labels == ["'<bos>'·0", "' When'·1", "' Mary'·2 IO"]


def test_attention_summaries_give_positions_and_roles() -> None:
    pattern = [[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0], [0.2, 0.3, 0.5, 0.0], [0.1, 0.6, 0.05, 0.25]]
    head = HeadSummary(layer=1, head=2, patching=0.3, dla=0.4, attends_to=[], pattern=pattern)
    text = attention_summary(head, [" x", " John", " y", " John"], {1: "S1", 3: "END"}, k=2)
    assert text == "S1 ' John'·1 0.60, END ' John'·3 0.25"  # the repeated name told apart by position and role


def test_component_names_follow_the_flattened_order() -> None:
    assert component_names(("layer", "head"), {"layer": ["0", "1"], "head": ["0", "1", "2"]}) == [
        "L0H0", "L0H1", "L0H2", "L1H0", "L1H1", "L1H2",
    ]  # fmt: skip
    assert component_names(("layer", "pos"), {"layer": ["0"], "pos": ["'a'·0", "'b'·1"]}) == ["L0 'a'·0", "L0 'b'·1"]
    scores = torch.arange(6.0).reshape(2, 3)  # flattened like the scatter's points
    names = component_names(("layer", "head"), {"layer": ["0", "1"], "head": ["0", "1", "2"]})
    assert dict(zip(names, scores.flatten().tolist(), strict=True))["L1H0"] == float(scores[1, 0])


def test_the_attribution_scatter_names_each_point() -> None:
    corr = AttributionCorrelation("head_out", 1.0, 1.0, 3, torch.tensor([0.1, 0.5, 0.9]), torch.tensor([0.2, 0.4, 1.0]))
    fig: Any = plot_attribution_scatter(corr, names=["L0H0", "L0H1", "L1H0"])
    points = fig.data[0]
    assert list(points.text) == ["L0H0", "L0H1", "L1H0"] and "%{text}" in points.hovertemplate
    assert list(points.x) == pytest.approx([0.2, 0.4, 1.0]) and list(points.y) == pytest.approx([0.1, 0.5, 0.9])


def test_logit_lens_cells_show_a_readable_subset_and_hover_shows_all() -> None:
    result = LogitLensResult(
        layers=["0_pre", "final"],
        logit_diff=torch.zeros(2),
        correct_prob=torch.zeros(2),
        correct_rank=torch.zeros(2),
        top_tokens=[[[" Mary", " the"], [" understanding", " a"]], [[" John", " x"], [" to", " y"]]],
        top_probs=torch.tensor([[[0.9, 0.05], [0.6, 0.1]], [[0.1, 0.05], [0.3, 0.2]]]),
        str_tokens=["<bos>", " gave"],
    )
    fig: Any = plot_top_tokens(result, ["'<bos>'·0", "' gave'·1 END"])
    heat = fig.data[0]
    # likely tokens are written (long ones cut to 6 characters); an unlikely one (p 0.1 < 0.2) is left blank
    assert [list(row) for row in heat.text] == [[" Mary", " unde…"], ["", " to"]]
    assert heat.customdata[0][1] == "' understanding' 0.60<br>' a' 0.10"  # hover: every top token in full
    assert list(heat.x) == ["'<bos>'·0", "' gave'·1 END"] and heat.textfont.size >= 10
