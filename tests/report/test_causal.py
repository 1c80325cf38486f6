"""The causal report: every analysis in one value, drawn as a page that opens in Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from circuitscope.analysis.causal import causal_analysis
from circuitscope.report.causal import causal_report
from circuitscope.tasks import Task
from tests.browser import open_in_chromium
from tests.tiny_models import VOCAB, TinyModels


def test_causal_report_on_a_tiny_model(tiny: TinyModels, tmp_path: Path) -> None:
    model = tiny.hooked("llama_gqa")
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(1, VOCAB, (4, 6), generator=g)
    corrupted = clean.clone()
    corrupted[:, 1] = torch.randint(1, VOCAB, (4,), generator=g)
    correct = torch.randint(0, VOCAB, (4,), generator=g)
    incorrect = torch.randint(0, VOCAB, (4,), generator=g)
    task = Task("tiny", ["c"] * 4, ["x"] * 4, clean, corrupted, torch.tensor([5, 5, 4, 5]), correct, incorrect)
    analysis = causal_analysis(model, task, model_name="tiny-llama", n_top_heads=2)
    assert len(analysis.positional_task) == 3  # the pairs of the most common length
    assert analysis.resid_patching.scores.shape == (model.cfg.n_layers, 6)
    assert len(analysis.top_heads) == 2
    payload = analysis.to_json()
    json.dumps(payload, allow_nan=False)  # strictly valid JSON
    assert payload["logit_diff"]["clean"] == analysis.clean_logit_diff
    page = causal_report(analysis).write(tmp_path / "report.html")
    result = open_in_chromium(page)
    assert result.console_errors == []
    assert result.dom.count("main-svg") >= 8  # every figure drew
    assert model.active_hooks() == []
