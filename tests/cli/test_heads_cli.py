"""``circuitscope heads`` on a tiny model folder: JSON keys and shapes, the HTML report, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circuitscope.cli.main import app
from circuitscope.core.loading import load_model
from tests.browser import open_in_chromium
from tests.tiny_models import BY_NAME

runner = CliRunner()
DETECTORS = ("previous_token", "duplicate_token", "induction", "copying", "copy_suppression")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_gpt2")
    BY_NAME["gpt2"].build().save_pretrained(folder)  # type: ignore[operator]
    return folder


def test_json_has_every_detector_as_a_layer_by_head_array(tiny_folder: Path, tmp_path: Path) -> None:
    page = tmp_path / "heads.html"
    result = runner.invoke(
        app, ["heads", str(tiny_folder), "--json", "--html", str(page), "--seq-len", "8", "--batch", "3", "--top", "3"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    model = load_model(str(tiny_folder))
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    for name in DETECTORS:
        scores = payload[name]
        assert len(scores) == n_layers and all(len(row) == n_heads for row in scores)
        assert all(0.0 <= x <= 1.0 for row in scores for x in row)
        top = payload["top"][name]
        assert len(top) == 3
        assert [t["score"] for t in top] == sorted((x for row in scores for x in row), reverse=True)[:3]
        assert scores[top[0]["layer"]][top[0]["head"]] == top[0]["score"]
    comp = payload["composition"]
    assert set(comp["top"]) == {"q", "k", "v"}
    assert comp["baseline_theory"] == pytest.approx(model.cfg.d_model**-0.5)
    assert all(t["from"][0] < t["to"][0] for t in comp["top"]["k"])
    assert payload["report"] == str(page)
    browser = open_in_chromium(page)
    assert browser.console_errors == []
    assert "Top heads per detector" in browser.dom and "plotly" in browser.dom


def test_no_composition_and_text_output(tiny_folder: Path) -> None:
    result = runner.invoke(app, ["heads", str(tiny_folder), "--no-composition", "--seq-len", "6", "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert "induction" in result.stdout and "composition" not in result.stdout.lower()
    result = runner.invoke(app, ["heads", str(tiny_folder), "--json", "--no-composition", "--seq-len", "6"])
    assert json.loads(result.stdout)["composition"] is None


def test_bad_model_name_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["heads", str(tmp_path / "no-such-model"), "--json"])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["error"] == "LoadError"
    assert "no-such-model" in payload["message"]
