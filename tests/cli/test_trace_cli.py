"""``circuitscope trace`` on a tiny model folder (and once on the embedded Gemma): --json numbers,
an HTML report that opens cleanly in Chromium, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from circuitscope.cli import trace
from tests.browser import open_in_chromium
from tests.tiny_models import TinyModels

runner = CliRunner()
app = typer.Typer()


@app.callback()
def _root() -> None:
    """Only the trace command, so the test does not depend on other command modules."""


trace.register(app)


@pytest.fixture(scope="module")
def folder(tiny: TinyModels) -> Path:
    return tiny.text_folder(layers=3)


@pytest.mark.slow
def test_trace_json_and_report(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "trace.html"
    args = ["trace", "--model", str(folder), "--prompt", "the cat sat on the mat", "--subject", "cat",
            "--samples", "2", "--window", "2", "--heads", "--heads-at", "last", "--neurons", "1", "--candidates", "8",
            "--out", str(out), "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["subject_range"] == [5, 8] and payload["n_samples"] == 2 and payload["report"] == str(out)
    assert set(payload["traces"]) == {"resid", "mlp", "attn"}
    resid = payload["traces"]["resid"]
    assert len(resid["restored"]) == 3 and len(resid["restored"][0]) == len(payload["tokens"]) == 23
    assert resid["restored"][-1][-1] == pytest.approx(payload["clean_prob"], abs=1e-6)
    assert all(row[:5] == [0.0] * 5 for row in resid["indirect_effect"])  # before the subject: no effect
    assert payload["traces"]["mlp"]["window"] == 2
    assert len(payload["heads"]["restored"]) == 3 and len(payload["heads"]["restored"][0]) == 4
    assert payload["heads"]["positions"] == [22] and payload["neurons"]["positions"] == [7]
    assert payload["neurons"]["layer"] == 1 and len(payload["neurons"]["neurons"]) == 8
    page = open_in_chromium(out)
    assert page.console_errors == []
    assert page.dom.count("plotly-graph-div") >= 5 and "Single attention heads" in page.dom


def test_trace_for_people_and_resampling(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.html"
    result = runner.invoke(
        app,
        ["trace", "--model", str(folder), "--prompt", "the cat sat", "--subject", "cat", "--kind", "resid",
         "--samples", "2", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "p clean" in result.stdout and "resid strongest" in result.stdout and out.is_file()


def test_bad_input_is_a_clear_json_error(folder: Path) -> None:
    base = ["trace", "--model", str(folder), "--json", "--samples", "1"]
    result = runner.invoke(app, [*base, "--prompt", "the cat sat", "--subject", "dog"])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["error"] == "TokenizationError" and "'dog'" in payload["message"]
    result = runner.invoke(app, [*base, "--prompt", "the cat sat", "--subject", "cat", "--kind", "heads"])
    assert result.exit_code == 1 and "--kind" in json.loads(result.stdout)["message"]
    result = runner.invoke(app, [*base, "--fact", "9999"])
    assert result.exit_code == 1 and "--list-facts" in json.loads(result.stdout)["message"]
    result = runner.invoke(app, [*base, "--prompt", "the cat sat"])
    assert result.exit_code == 1 and "--subject" in json.loads(result.stdout)["message"]


def test_list_facts() -> None:
    result = runner.invoke(app, ["trace", "--list-facts", "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)["facts"]
    assert facts[0]["prompt"] == "The Eiffel Tower is located in the city of" and facts[0]["object"] == " Paris"


@pytest.mark.real
def test_trace_on_the_embedded_model(tmp_path: Path) -> None:
    out = tmp_path / "eiffel.html"
    result = runner.invoke(
        app, ["trace", "--fact", "0", "--kind", "resid", "--samples", "2", "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["target"] == " Paris" and payload["clean_prob"] > 5 * payload["corrupted_prob"]
    assert len(payload["traces"]["resid"]["restored"]) == 18
    assert open_in_chromium(out).console_errors == []
