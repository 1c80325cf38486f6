"""``circuitscope report ioi`` and ``report task`` on a tiny IOI model folder: --quick, the threshold rule
refused before the model loads, built-in tasks by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import circuitscope.cli.report as report_cli
from circuitscope.cli.main import app
from circuitscope.tasks.accuracy import CHANCE, NEAR_CHANCE_MARGIN
from tests.circuits.ioi_fixtures import ioi_model

runner = CliRunner()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-ioi")
    model = ioi_model()
    model.hf_model.save_pretrained(path)
    model.tokenizer.save_pretrained(path)
    return path


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRCUITSCOPE_NO_PROGRESS", "1")


@pytest.fixture
def no_load(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def stop(name: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        raise RuntimeError("the model loaded")

    monkeypatch.setattr(report_cli, "load_model", stop)
    return calls


def test_report_ioi_quick_writes_only_the_causal_report(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "r" / "ioi.html"
    args = ["report", "ioi", "--model", str(folder), "--quick", "--n-prompts", "4", "--positional-prompts", "2"]
    result = runner.invoke(app, [*args, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["report"] == str(out) and out.is_file()
    assert payload["task"] == "ioi" and payload["n_prompts"] == 4
    assert "ioi_circuit" not in payload and "answer" not in payload
    assert sorted(p.name for p in out.parent.iterdir()) == ["ioi.html"]  # no circuit file with --quick
    page = out.read_text()
    assert "Example prompt" in page and "END = " in page and "S2 = " in page  # the example's roles are named


@pytest.mark.parametrize(
    ("option", "phrase"),
    [
        (["--k-std", "0"], "--k-std must be in (0, 10], got 0.0"),
        (["--k-std", "11"], "--k-std must be in (0, 10], got 11.0"),
        (["--max-heads", "0"], "--max-heads must be between 1 and 64, got 0"),
        (["--max-heads", "65"], "--max-heads must be between 1 and 64, got 65"),
    ],
)
def test_a_threshold_rule_out_of_range_is_refused_before_the_model_loads(
    option: list[str], phrase: str, no_load: list[str], tmp_path: Path
) -> None:
    result = runner.invoke(app, ["report", "ioi", *option, "--out", str(tmp_path / "ioi.html"), "--json"])
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    assert payload["error"] == "OptionError" and phrase in payload["message"]
    assert no_load == [] and list(tmp_path.iterdir()) == []


def test_an_unusable_circuit_file_path_is_refused_before_the_model_loads(no_load: list[str], tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    args = ["report", "ioi", "--out", str(tmp_path / "ioi.html"), "--circuit-out", str(folder), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    assert payload["error"] == "OutputError" and "--circuit-out" in payload["message"] and no_load == []


@pytest.mark.parametrize(
    ("args", "error", "phrase"),
    [
        (["--task", "bogus"], "UnknownTaskError", "unknown task 'bogus'"),
        (["--task", "missing.jsonl"], "TaskError", "does not exist"),
        (["--task", "ioi", "--pairs", "x.jsonl"], "OptionError", "not both"),
        ([], "OptionError", "give a task: --task NAME"),
    ],
)
def test_report_task_refuses_a_bad_task_before_the_model_loads(
    args: list[str], error: str, phrase: str, no_load: list[str], tmp_path: Path
) -> None:
    result = runner.invoke(app, ["report", "task", *args, "--out", str(tmp_path / "t.html"), "--json"])
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    assert payload["error"] == error and phrase in payload["message"] and no_load == []


def test_report_task_runs_a_built_in_task_by_name(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "task.html"
    args = ["report", "task", "--task", "ioi", "--model", str(folder), "--n-prompts", "3", "--seed", "2"]
    result = runner.invoke(app, [*args, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["task"] == "ioi" and payload["n_prompts"] == 3 and out.is_file()
    near_chance = payload["accuracy"]["clean"] < CHANCE + NEAR_CHANCE_MARGIN
    assert (payload["warning"] is not None) == near_chance
    assert near_chance  # a random tiny model cannot do IOI: the warning heads the page and goes to stderr
    assert "near chance" in out.read_text(encoding="utf-8") and "warning: the model is near chance" in result.stderr


def _full(folder: Path, out: Path, *extra: str) -> Any:
    args = ["report", "ioi", "--model", str(folder), "--n-prompts", "4", "--positional-prompts", "2",
            "--circuit-prompts", "4", "--n-reference", "1", "--out", str(out), *extra, "--json"]  # fmt: skip
    return runner.invoke(app, args)


def test_report_ioi_finds_the_circuit_saves_it_for_circuit_eval_and_answers(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import circuitscope.circuits.ioi.run as run

    monkeypatch.setattr(run, "MIN_ACCURACY", 0.0)  # the random tiny model "does" IOI: the whole pipeline runs
    out = tmp_path / "reports" / "ioi.html"
    result = _full(folder, out, "--k-std", "0.5", "--max-heads", "2")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    circuit = payload["ioi_circuit"]
    assert circuit["classes"]["rule"] == {"k_std": 0.5, "max_heads": 2}
    assert set(circuit["classes"]["classes"]) == {
        "name_mover", "negative_name_mover", "s_inhibition", "induction", "duplicate_token", "previous_token",
        "backup_name_mover",
    }  # fmt: skip
    evaluation = circuit["evaluation"]
    assert f"F(C) = {evaluation['f_circuit']:.2f}" in payload["answer"]
    assert f"F(M) = {evaluation['f_model']:.2f}" in payload["answer"]
    saved = tmp_path / "reports" / "ioi.circuit.json"
    assert payload["circuit_file"] == str(saved) and saved.is_file() and payload["report"] == str(out)
    page = out.read_text()
    assert "<h2>Answer</h2>" in page and page.index("<h2>Answer</h2>") < page.index("<h2>Logit lens</h2>")
    checked = runner.invoke(app, ["circuit-eval", str(saved), "--model", str(folder), "--n-prompts", "4", "--json"])
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout)["circuit"] == str(saved)


def test_report_ioi_on_a_model_that_cannot_do_ioi_says_so_first(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import circuitscope.circuits.ioi.run as run

    monkeypatch.setattr(run, "MIN_ACCURACY", 1.01)  # no accuracy passes: the model "cannot" do IOI
    out = tmp_path / "ioi.html"
    result = _full(folder, out)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ioi_circuit"]["evaluation"] is None and payload["circuit_file"] is None
    warning = payload["ioi_circuit"]["warnings"][0]
    assert "does not do IOI" in warning and payload["answer"].endswith(f"No circuit was built: {warning}")
    assert not (tmp_path / "ioi.circuit.json").exists()
    page = out.read_text()
    assert page.index("<h2>Warnings</h2>") < page.index("<h2>Answer</h2>")  # the warning comes first
