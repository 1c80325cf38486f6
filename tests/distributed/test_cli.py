"""The commands under torchrun: one launch's output equals one process's, only rank 0 writes, disagreeing ranks refused.

``circuitscope circuit --method eap`` is launched with ``torchrun`` itself; ``heads --text`` and the
refusal run as commands invoked in 2 gloo ranks (one launch for both). One process at one thread (the
ranks' thread count) gives the reference, so the scores agree exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from circuitscope.cli.main import app
from tests.distributed.commands import commands_on_rank
from tests.ranks import run_ranks
from tests.tiny_models import TinyModels

runner = CliRunner()
PAIRS = "".join(
    f'{{"clean": "the {a} is", "corrupted": "the {b} is", "correct": "{c}", "incorrect": "{d}"}}\n'
    for a, b, c, d in [("cat", "dog", "a", "b"), ("cow", "pig", "c", "d"), ("hen", "fox", "e", "f"),
                       ("owl", "bat", "g", "h"), ("elk", "yak", "i", "j")]
)  # fmt: skip
TEXT = ("the cat sat on the mat and the dog ran to the cat, then the cat ran to the mat and sat. " * 2)[:93]
"""Three windows of 31 characters (one token each) after BOS: --text-window 32 --text-tokens 96."""


@pytest.fixture(scope="module")
def folder(tiny: TinyModels) -> Path:
    return tiny.text_folder()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "pairs.jsonl").write_text(PAIRS)
    (tmp_path / "text.txt").write_text(TEXT)
    return {"pairs": tmp_path / "pairs.jsonl", "text": tmp_path / "text.txt", "dir": tmp_path}


def _one_thread(args: list[str]) -> Any:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return runner.invoke(app, args)
    finally:
        torch.set_num_threads(before)


def _circuit(folder: Path, pairs: Path, out: Path, *extra: str) -> list[str]:
    return ["circuit", "--model", str(folder), "--task", str(pairs), "--method", "eap", "--batch-size", "2",
            "--edges", "6", "--no-curve", "--out", str(out), "--json", *extra]  # fmt: skip


def _heads(folder: Path, text: Path, html: Path) -> list[str]:
    return ["heads", "--model", str(folder), "--text", str(text), "--text-window", "32", "--text-tokens", "96",
            "--ablation", "zero", "--seq-len", "6", "--batch", "2", "--n-tokens", "40", "--no-composition",
            "--html", str(html), "--json"]  # fmt: skip


def _without_timings(circuit: dict[str, Any]) -> dict[str, Any]:
    return {**circuit, "info": {"faithfulness": circuit["info"]["faithfulness"]}}


@pytest.mark.slow  # a torchrun launch: two fresh processes importing torch and transformers (~20 s busy)
def test_torchrun_circuit_equals_one_process(folder: Path, files: dict[str, Path]) -> None:
    launched, alone = files["dir"] / "launched.json", files["dir"] / "alone.json"
    env = {**os.environ, "CIRCUITSCOPE_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "circuitscope.cli.main", *_circuit(folder, files["pairs"], launched)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = json.loads(done.stdout)  # one JSON document: only rank 0 printed
    assert printed["circuit"] == str(launched) and printed["n_edges"] == 6
    one = _one_thread(_circuit(folder, files["pairs"], alone))
    assert one.exit_code == 0, one.output
    two_ranks, one_process = json.loads(launched.read_text()), json.loads(alone.read_text())
    assert _without_timings(two_ranks) == _without_timings(one_process)
    assert len(two_ranks["scores"]) > 6 and any(s != 0 for _, _, s in two_ranks["scores"])


@pytest.mark.slow  # two spawned ranks importing the whole CLI (~25 s busy)
def test_heads_on_two_ranks_and_ranks_that_disagree(folder: Path, files: dict[str, Path]) -> None:
    page, alone = files["dir"] / "heads.html", files["dir"] / "alone.html"
    heads = _heads(folder, files["text"], page)
    missing = str(files["dir"] / "no-such-model")  # never loaded: the ranks are refused first
    steps = [_circuit(Path(missing), files["pairs"], files["dir"] / "c.json", "--steps", str(s)) for s in (2, 3)]
    (h0, d0), (h1, d1) = run_ranks(commands_on_rank, 2, [[heads, heads], steps])
    assert h0[0] == 0 and h1 == (0, "")  # rank 1 computed its share and printed nothing
    one = _one_thread(_heads(folder, files["text"], alone))
    assert one.exit_code == 0, one.output
    launched, single = json.loads(h0[1]), json.loads(one.stdout)
    assert launched["report"] == str(page) and page.is_file()
    assert launched["ablation_importance"] == single["ablation_importance"]
    assert {**launched, "report": None, "seconds": None} == {**single, "report": None, "seconds": None}
    for code, out in (d0, d1):
        error = json.loads(out)
        assert code == 1 and error["error"] == "DistributedError"
        assert "--steps: rank 0=2, rank 1=3" in error["message"] and "--model" not in error["message"]
