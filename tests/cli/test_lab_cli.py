"""``circuitscope lab ...``: JSON keys, report files, clear errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from circuitscope.cli.main import app


def test_lab_superposition_json_has_dimensions_per_feature(tmp_path) -> None:
    out = tmp_path / "sup"
    args = ["lab", "superposition", "--steps", "3", "--batch-size", "16", "--out", str(out), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert isinstance(payload["dimensions_per_feature"], list) and len(payload["dimensions_per_feature"]) == 20
    assert payload["inverse_density"][0] == 1.0
    assert (out / "report.html").exists() and json.loads((out / "results.json").read_text())["steps"] == 3


def test_lab_grokking_json_has_test_loss_and_bad_p_is_an_error(tmp_path) -> None:
    out = tmp_path / "grok"
    args = ["lab", "grokking", "--steps", "4", "--p", "7", "--checkpoint-every", "2", "--out", str(out), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert len(payload["test_loss"]) == 3 and payload["config"]["p"] == 7
    bad = CliRunner().invoke(app, ["lab", "grokking", "--p", "12", "--out", str(tmp_path / "bad"), "--json"])
    assert bad.exit_code == 1
    assert "not prime" in json.loads(bad.stdout)["message"]
    bad = CliRunner().invoke(
        app, ["lab", "grokking", "--train-fraction", "1.5", "--out", str(tmp_path / "b"), "--json"]
    )
    assert bad.exit_code == 1 and "between 0 and 1" in json.loads(bad.stdout)["message"]


def test_lab_induction_bad_layers(tmp_path) -> None:
    bad = CliRunner().invoke(app, ["lab", "induction", "--layers", "two", "--out", str(tmp_path), "--json"])
    assert bad.exit_code == 1 and "--layers" in json.loads(bad.stdout)["message"]


def test_a_lab_that_cannot_train_is_refused_before_any_work(tmp_path) -> None:
    """lr <= 0, steps < 1 and batch < 1 are refused by each lab's configuration before the output folder is made."""
    for args in (
        ["superposition", "--lr", "0"],
        ["superposition", "--lr", "-1"],
        ["grokking", "--lr", "0"],
        ["grokking", "--lr", "-0.5"],
    ):
        out = tmp_path / "-".join(args)
        bad = CliRunner().invoke(app, ["lab", *args, "--out", str(out), "--json"])
        assert bad.exit_code == 1, (args, bad.output)
        assert json.loads(bad.stdout)["error"] == "LabConfigError" and "lr" in json.loads(bad.stdout)["message"]
        assert not out.exists()
