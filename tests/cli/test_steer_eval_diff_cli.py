"""The new commands on a tiny model folder: --json numbers, HTML reports that open cleanly, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from circuitscope.cli import analogies, diff, eval_prompts, probe, steer
from tests.browser import open_in_chromium
from tests.tiny_models import TinyModels

runner = CliRunner()
# only this commands, so the test does not depend on other command modules
app = typer.Typer()
for _module in (analogies, diff, eval_prompts, probe, steer):
    _module.register(app)


@pytest.fixture(scope="module")
def folder(tiny: TinyModels) -> Path:
    return tiny.text_folder()


def _json(args: list[str]) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_steer_writes_sweep_and_a_clean_report(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "steer.html"
    vec = tmp_path / "v.safetensors"
    payload = _json(
        ["steer", "--model", str(folder), "--positive", "y", "--negative", "n", "--layers", "0-1", "--coeffs", "0,4",
         "--prompt", "i am", "--targets", "y", "--max-new-tokens", "3", "--out", str(out), "--save-vector", str(vec)]
    )  # fmt: skip
    sweep = payload["sweep"]
    assert len(sweep["effect"]) == 2 and len(sweep["effect"][0]) == 2
    assert [row[0] for row in sweep["damage"]] == [pytest.approx(0.0, abs=1e-6)] * 2
    assert len(payload["generations"]) == 3 and vec.is_file()
    page = open_in_chromium(out)
    assert page.console_errors == []
    assert "plotly-graph-div" in page.dom and "Generations" in page.dom


def test_eval_prompts_and_diff_reports(folder: Path, tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"question": "is 2 > 1", "options": ["yes", "no"], "answer": "yes"}\n'
        '{"question": "is 1 > 2", "options": ["yes", "no"], "answer": "no"}\n'
    )
    out = tmp_path / "eval.html"
    framings = ["--framing", "plain=q: {question} a:", "--framing", "polite=please. q: {question} a:"]
    payload = _json(
        ["eval-prompts", str(questions), "--model", str(folder), "--n-boot", "100", "--out", str(out), *framings]
    )
    assert [r["framing"] for r in payload["table"]] == ["plain", "polite"]
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat.\n\nnumbers: 1 2 3 4 5 6.")
    diff_out = tmp_path / "diff.html"
    d = _json(["diff", "--a", str(folder), "--b", str(folder), "--text", str(text), "--alphas", "0,1",
               "--out", str(diff_out)])  # fmt: skip
    assert d["loss"]["mean_diff"] == 0.0 and d["weights"]["total_relative_diff"] == 0.0
    assert all(x == pytest.approx(1.0) for x in d["cka"]["cka"])
    for page in (out, diff_out):
        assert open_in_chromium(page).console_errors == []


def test_bad_input_is_a_clear_json_error(folder: Path) -> None:
    result = runner.invoke(app, ["analogy", "king - - man", "--model", str(folder), "--json"])
    assert result.exit_code == 1 and json.loads(result.stdout)["error"] == "ExpressionError"
    result = runner.invoke(app, ["steer", "--model", str(folder), "--layers", "7", "--json"])
    assert result.exit_code != 0
