"""``circuitscope patch``: the library's result as JSON and a table, an HTML heatmap, refusals before the model
loads, and a ``torchrun`` launch of 2 ranks printing (once) what one process prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

import circuitscope as cs
from circuitscope.analysis.patching import activation_patching
from circuitscope.cli.main import app
from circuitscope.tasks.library import resolve_task
from tests.cli._launch import one_thread, torchrun
from tests.tiny_models import TinyModels

runner = CliRunner()
PAIRS = "".join(
    f'{{"clean": "the {a} is", "corrupted": "the {b} is", "correct": "{c}", "incorrect": "{d}"}}\n'
    for a, b, c, d in [("cat", "dog", "a", "b"), ("cow", "pig", "c", "d"), ("hen", "fox", "e", "f")]
)


@pytest.fixture(scope="module")
def folder(tiny: TinyModels) -> Path:
    return tiny.text_folder()


@pytest.fixture
def pairs(tmp_path: Path) -> Path:
    (tmp_path / "pairs.jsonl").write_text(PAIRS)
    return tmp_path / "pairs.jsonl"


def _args(folder: Path, pairs: Path, target: str, *extra: str) -> list[str]:
    return ["patch", "--model", str(folder), "--task", str(pairs), "--target", target, "--batch-size", "4", *extra]


def _one_thread(args: list[str]) -> Any:
    return one_thread(app, args)


def test_patch_prints_the_library_result(folder: Path, pairs: Path, tmp_path: Path) -> None:
    html = tmp_path / "heads.html"
    done = _one_thread(_args(folder, pairs, "head_out", "--json", "--out", str(html)))
    assert done.exit_code == 0, done.output
    printed = json.loads(done.stdout)
    model = cs.load_model(str(folder))
    expected = activation_patching(model, resolve_task(model, str(pairs), n_prompts=8, seed=0), "head_out")
    assert printed["axes"] == ["layer", "head"] and printed["target"] == "head_out"
    torch.testing.assert_close(torch.tensor(printed["scores"]), expected.scores, atol=1e-6, rtol=0)
    assert printed["report"] == str(html) and "<html" in html.read_text()[:500].lower()
    table = _one_thread(_args(folder, pairs, "resid_pre", "--top", "3"))
    assert table.exit_code == 0, table.output
    assert "resid_pre over 2 x" in table.stdout and len(table.stdout.strip().splitlines()) == 4  # header + top 3


def test_bad_options_are_refused_before_the_model_loads(pairs: Path, tmp_path: Path) -> None:
    done = runner.invoke(app, _args(tmp_path / "no-such-model", pairs, "heads_out", "--json"))
    assert done.exit_code == 1 and "--target must be one of" in json.loads(done.stdout)["message"]
    done = runner.invoke(app, _args(tmp_path / "no-such-model", tmp_path / "none.jsonl", "head_out", "--json"))
    assert done.exit_code == 1 and "does not exist" in json.loads(done.stdout)["message"]


@pytest.mark.slow  # a torchrun launch: two fresh processes importing torch and transformers (~20 s busy)
def test_torchrun_patch_equals_one_process(folder: Path, pairs: Path) -> None:
    launched = torchrun(_args(folder, pairs, "resid_pre", "--json"))
    assert launched.returncode == 0, launched.stderr[-3000:]
    printed = json.loads(launched.stdout)  # one JSON document: only rank 0 printed
    alone = json.loads(_one_thread(_args(folder, pairs, "resid_pre", "--json")).stdout)
    assert printed["scores"] == alone["scores"] and printed["raw"] == alone["raw"]
