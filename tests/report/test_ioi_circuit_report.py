"""The IOI circuit report from a hand-built result: every class listed, the answer states its numbers, it opens."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from circuitscope import HookedModel
from circuitscope.analysis.causal import CausalAnalysis, causal_analysis
from circuitscope.circuits.ioi.result import (
    HEAD_CLASSES,
    CircuitEvaluation,
    ClassFinding,
    CompletenessPoint,
    HeadClass,
    HeadClasses,
    HeadEvidence,
    IOICircuitResult,
    MinimalityPoint,
    PublishedCircuit,
    ThresholdRule,
)
from circuitscope.engine.grid import ScoreGrid
from circuitscope.report.ioi_answer import CLASS_TITLES, answer_paragraph, comparison_rows, depth_text, head_roles
from circuitscope.report.ioi_circuit import ioi_report, plot_class_scores
from circuitscope.tasks import Task
from tests.browser import open_in_chromium
from tests.tiny_models import BY_NAME, VOCAB

N_LAYERS, N_HEADS = 2, 4
RULE = ThresholdRule(k_std=1.5, max_heads=2)
EMPTY_NOTE = "no receivers: the step before found no name movers to patch into"

# a head each class should find (the planted peak of its score grid); backup_name_mover is planted nowhere
PLANTED: dict[HeadClass, tuple[int, int] | None] = {
    "name_mover": (1, 2),
    "negative_name_mover": (1, 3),
    "s_inhibition": (1, 0),
    "induction": (0, 3),
    "duplicate_token": (0, 1),
    "previous_token": (0, 0),
    "backup_name_mover": None,
}
GPT2 = PublishedCircuit(
    model="gpt2-small",
    n_layers=12,
    source="Wang et al. 2022, Interpretability in the Wild, Figure 2",
    classes={
        "name_mover": [(9, 6), (9, 9), (10, 0)],
        "negative_name_mover": [(10, 7), (11, 10)],
        "s_inhibition": [(7, 3), (7, 9), (8, 6), (8, 10)],
        "induction": [(5, 5), (6, 9)],
        "duplicate_token": [(0, 1), (3, 0)],
        "previous_token": [(2, 2), (4, 11)],
        "backup_name_mover": [(10, 10), (11, 2)],
    },
    clean_logit_diff=3.56,
    faithfulness=0.87,
)


def _finding(name: HeadClass) -> ClassFinding:
    g = torch.Generator().manual_seed(HEAD_CLASSES.index(name))
    scores = 0.05 * torch.randn(N_LAYERS, N_HEADS, generator=g)
    direction = "negative" if name == "negative_name_mover" else "positive"
    planted = PLANTED[name]
    if planted is not None:
        scores[planted] = 1.0 if direction == "positive" else -1.0
    else:  # all heads alike: none clears mean + k std
        scores = torch.full((N_LAYERS, N_HEADS), 0.01)
    grid = ScoreGrid(
        scores=scores, axes=("layer", "head"), metric="path patching score",
        labels={"layer": [str(i) for i in range(N_LAYERS)], "head": [str(i) for i in range(N_HEADS)]},
        clean_value=2.5, corrupted_value=0.1,
    )  # fmt: skip
    heads = RULE.select(scores, direction)  # the members are exactly what the rule selects
    members = [
        HeadEvidence(
            layer, head, float(scores[layer, head]),
            attention={"END->IO": 0.61, "END->S1": 0.05, "END->S2": 0.07} if "name" in name else {"S2->S1+1": 0.44},
            copy_score=0.9 if "name" in name else None,
            detectors={"induction": 0.31, "previous_token": 0.12},
        )
        for layer, head in heads
    ]  # fmt: skip
    note = EMPTY_NOTE if not members else ""
    return ClassFinding(name, f"path patching for {name}", grid, direction, RULE.cut(scores, direction), members, note)


def _result(*, evaluated: bool = True, warnings: list[str] | None = None) -> IOICircuitResult:
    classes = HeadClasses(RULE, {name: _finding(name) for name in HEAD_CLASSES})
    evaluation = CircuitEvaluation(
        f_model=2.5,
        f_circuit=1.6,
        completeness=[
            CompletenessPoint("empty", [], 1.6, 2.5),
            CompletenessPoint("class:name_mover", [(1, 2)], 0.2, 1.4),
            CompletenessPoint("random:0", [(0, 1), (1, 0)], 1.1, 1.3),
        ],
        minimality=[
            MinimalityPoint((1, 2), "name_mover", [], 1.6, 0.35),
            MinimalityPoint((0, 3), "induction", [(0, 1)], 1.2, 1.03),
        ],
        n_reference=5,
    )
    return IOICircuitResult(
        model_name="tiny-llama", fingerprint="abc123", n_layers=N_LAYERS, n_heads=N_HEADS, n_prompts=12,
        clean_logit_diff=2.5, clean_accuracy=0.92, classes=classes, evaluation=evaluation if evaluated else None,
        circuit=None, reference=GPT2, warnings=warnings or [], seconds=3.0,
    )  # fmt: skip


@pytest.fixture(scope="module")
def analysis() -> CausalAnalysis:
    model = HookedModel(BY_NAME["llama_gqa"].build())
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(3, VOCAB, (4, 6), generator=g)
    clean[:, 1], clean[:, 2], clean[:, 3] = 2, 0, 2  # S1, IO, S2: the incorrect answer twice, the correct once
    corrupted = clean.clone()
    corrupted[:, 1:4] = torch.randint(3, VOCAB, (4, 3), generator=g)
    correct, incorrect = torch.zeros(4, dtype=torch.long), torch.full((4,), 2)
    task = Task("ioi", ["c"] * 4, ["x"] * 4, clean, corrupted, torch.tensor([5, 5, 5, 5]), correct, incorrect)
    return causal_analysis(model, task, model_name="tiny-llama", n_top_heads=2)


def test_the_fixture_is_consistent() -> None:
    result = _result()
    for name, planted in PLANTED.items():
        assert result.classes.heads(name) == ([] if planted is None else [planted])
    assert result.evaluation is not None and result.evaluation.faithfulness == pytest.approx(0.64)


def test_the_answer_states_the_numbers_it_was_given() -> None:
    text = answer_paragraph(_result())
    assert "tiny-llama (2 layers x 4 heads) on 12 IOI prompts" in text
    assert "92%" in text and "2.50" in text  # clean accuracy, F(M) and clean logit difference
    assert "F(C) = 1.60" in text and "F(M) = 2.50" in text and "faithfulness 64%" in text
    assert "the paper: 87% for gpt2-small" in text
    assert "It has 6 of the paper's seven head classes" in text
    assert "name movers L1H2 (relative depth 0.50)" in text
    assert "previous-token heads L0H0 (relative depth 0.00)" in text
    assert "Empty (no head passed the cut): backup name movers." in text
    # completeness: gaps 0.9, 1.2, 0.2; the largest is |0.2 - 1.4| = 1.2, 48% of F(M)
    assert "the largest |F(C\\K) - F(M\\K)| is 1.20 (48% of F(M)), for class:name_mover" in text
    # minimality: |1.6 - 0.35| = 1.25 for L1H2, |1.2 - 1.03| = 0.17 for L0H3
    assert "by 0.17 (L0H3, the least needed) to 1.25 (L1H2)" in text
    # GPT-2 small: name movers at mean layer 9.33 of 12; backup name movers only there
    assert "name movers at relative depth 0.50 here, 0.78 there (1 vs 3 heads)" in text
    assert "gpt2-small has backup name movers (2, depth 0.83-0.92), none here" in text
    assert "The circuit has 6 heads, gpt2-small's published one 17." in text


def test_a_model_that_cannot_do_the_task_gets_no_circuit_and_a_warning_first(tmp_path: Path) -> None:
    warning = "clean accuracy 48% is near chance: the model cannot do this task, no circuit built"
    result = _result(evaluated=False, warnings=[warning])
    text = answer_paragraph(result)
    assert text.endswith(f"No circuit was built: {warning}")
    page = ioi_report(None, result).to_html()
    sections = re.findall(r"<h2>(.*?)</h2>", page)
    assert sections[:2] == ["Warnings", "Answer"]
    assert warning in page and "Not evaluated" in page


def test_the_comparison_lists_every_class_beside_the_published_one() -> None:
    rows = comparison_rows(_result())
    assert [r[0] for r in rows] == [CLASS_TITLES[c] for c in HEAD_CLASSES]
    by_class = {r[0]: r for r in rows}
    assert by_class["name movers"] == ["name movers", "L1H2", "0.50", "L9H6, L9H9, L10H0", "0.75-0.83"]
    assert by_class["backup name movers"][1:3] == ["empty", "—"]
    assert depth_text([(3, 0), (3, 1)], 12) == "0.25" and depth_text([], 12) == ""
    assert head_roles(_result())[(1, 2)] == "name movers"


def test_the_class_heatmap_rings_the_members() -> None:
    finding = _finding("name_mover")
    fig: Any = plot_class_scores(finding)
    heat, ring = fig.data
    assert heat.z[1][2] == pytest.approx(1.0)
    assert list(ring.x) == ["2"] and list(ring.y) == ["1"] and list(ring.text) == ["L1H2"]
    assert f"{finding.cut:.3g}" in fig.layout.title.text


def test_the_page_lists_every_class_in_order_and_opens_in_chromium(tmp_path: Path, analysis: CausalAnalysis) -> None:
    page = ioi_report(analysis, _result()).write(tmp_path / "ioi.html")
    text = page.read_text()
    sections = re.findall(r"<h2>(.*?)</h2>", text)
    assert sections[0] == "Answer"  # no warnings: the answer comes first
    titles = [CLASS_TITLES[c] for c in HEAD_CLASSES]
    found = [next(i for i, s in enumerate(sections) if s.lower().startswith(t.lower())) for t in titles]
    assert found == sorted(found)  # every class has its section, in the search order
    assert "Backup name movers: empty" in sections and EMPTY_NOTE in text
    assert "Name movers: 1 head" in sections
    order = [sections.index(s) for s in ("Answer", "Circuit evaluation", "Completeness", "Minimality", "Logit lens")]
    assert order == sorted(order) and found[-1] < order[1]
    roles = head_roles(_result())
    for h in analysis.top_heads:  # the summary names each top head's class (or says it has none)
        role = roles.get((h.layer, h.head))
        said = f"Its head class: {role}." if role else "It is in none of the head classes."
        assert re.search(rf"<p>L{h.layer}H{h.head}: [^<]*{re.escape(said)}</p>", text)
    result = open_in_chromium(page)
    assert result.console_errors == []
    # 7 class heatmaps, completeness, minimality, 8 causal figures and 2 attention patterns drew
    assert result.dom.count("plot-container plotly") == 7 + 2 + 8 + 2


def test_a_name_mover_that_attends_to_s_is_said_to_write_against_s() -> None:
    result = _result()
    assert "writing against S" not in answer_paragraph(result)  # the fixture's name movers attend to IO (0.61)
    mover = result.classes.classes["name_mover"].members[0]
    looks_at_s = dataclasses.replace(
        mover, attention={"END->IO": 0.07, "END->S1": 0.06, "END->S2": 0.36}, copy_score=0.0
    )
    result.classes.classes["name_mover"].members[0] = looks_at_s
    text = answer_paragraph(result)
    assert "L1H2 (name mover: END->S 0.42 vs END->IO 0.07, OV copy score on names 0.00)" in text
    assert "writing against S" in text
