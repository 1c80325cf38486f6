"""Progress of long work: bars on a terminal, periodic plain lines on stderr otherwise, stdout left clean.

Under pytest stderr is not a terminal, so every display here is the plain-line mode. The
command tests run each long command on a tiny model or config with ``--json`` and
``CIRCUITSCOPE_PROGRESS_EVERY=0`` (a line at every report): stdout must be exactly the JSON
document and stderr must carry counts, the elapsed time, an estimate of the time left and a
final line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circuitscope.cli.main import app
from circuitscope.progress import EVERY_ENV, NO_PROGRESS_ENV, progress, stages, status
from tests.tiny_models import TinyModels

runner = CliRunner()
PERIODIC = re.compile(r"^(?P<stage>.+) (?P<done>\d+)/(?P<total>\d+) \(\d+%\), \d+:\d\d elapsed, ~\d+:\d\d left$")
FINAL = re.compile(r"^(?P<stage>.+) (?P<done>\d+)/(?P<total>\d+) \(100%\), done in \d+:\d\d$")


class FakeClock:
    """A clock the test moves by hand: no sleeping."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _progress_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NO_PROGRESS_ENV, raising=False)
    monkeypatch.delenv(EVERY_ENV, raising=False)


@pytest.fixture(autouse=True)
def _one_thread(one_thread: None) -> None:
    """Every test here on one torch thread (tests/conftest.py's ``one_thread``)."""


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_stages_print_periodic_lines_with_counts_and_time_left(capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    with stages("circuit", every=10, clock=clock) as report:
        report("EAP scores", 0, 5644)
        for t, done in ((4.0, 40), (9.9, 99), (12.0, 120), (15.0, 150), (23.0, 230), (56.44, 5644), (60.0, 5644)):
            clock.now = t
            report("EAP scores", done, 5644)
    out, err = capsys.readouterr()
    assert out == ""
    assert _lines(err) == [
        "circuit: EAP scores 0/5644 (0%) ...",
        "circuit: EAP scores 120/5644 (2%), 0:12 elapsed, ~9:12 left",  # 5524 units at 0.1 s each
        "circuit: EAP scores 230/5644 (4%), 0:23 elapsed, ~9:01 left",
        "circuit: EAP scores 5644/5644 (100%), done in 0:56",  # once, though reported twice
    ]


def test_the_rate_is_measured_from_the_first_report_of_a_resumed_run(capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    with stages(every=0, clock=clock) as report:
        report("grokking", 500, 1000)  # resumed at step 500
        clock.now = 10.0
        report("grokking", 600, 1000)
    assert _lines(capsys.readouterr().err) == [
        "grokking 500/1000 (50%) ...",
        "grokking 600/1000 (60%), 0:10 elapsed, ~0:40 left",
    ]


def test_a_stage_run_again_reports_again(capsys: pytest.CaptureFixture[str]) -> None:
    with stages(every=0) as report:
        for _ in range(2):
            report("superposition 5->2", 0, 3)
            report("superposition 5->2", 3, 3)
    finals = [line for line in _lines(capsys.readouterr().err) if FINAL.match(line)]
    assert len(finals) == 2


def test_progress_iterator_prints_counts_and_a_final_line(capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    seen = []
    for i in progress(range(4), "patching head_out", every=0, clock=clock):
        clock.now += 2.0
        seen.append(i)
    out, err = capsys.readouterr()
    assert seen == [0, 1, 2, 3] and out == ""
    assert _lines(err) == [
        "patching head_out 0/4 (0%) ...",
        "patching head_out 1/4 (25%), 0:02 elapsed, ~0:06 left",
        "patching head_out 2/4 (50%), 0:04 elapsed, ~0:04 left",
        "patching head_out 3/4 (75%), 0:06 elapsed, ~0:02 left",
        "patching head_out 4/4 (100%), done in 0:08",
    ]


def test_progress_of_unknown_length_counts_items(capsys: pytest.CaptureFixture[str]) -> None:
    assert list(progress(iter("abc"), "reading", every=0)) == ["a", "b", "c"]
    lines = _lines(capsys.readouterr().err)
    assert lines[0] == "reading 0 ..." and re.fullmatch(r"reading 3, done in 0:00", lines[-1])


def test_the_interval_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FakeClock()
    monkeypatch.setenv(EVERY_ENV, "30")
    with stages(clock=clock) as report:
        report("s", 0, 100)
        for t in (10.0, 20.0, 31.0):
            clock.now = t
            report("s", int(t), 100)
    assert [line.split(" ")[1] for line in _lines(capsys.readouterr().err)] == ["0/100", "31/100"]


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_a_bad_interval_is_named_and_the_default_used(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FakeClock()
    monkeypatch.setenv(EVERY_ENV, value)
    with stages(clock=clock) as report:
        report("s", 0, 100)
        clock.now = 9.0
        report("s", 9, 100)  # under the 10 s default: no line
        clock.now = 10.0
        report("s", 10, 100)
    lines = _lines(capsys.readouterr().err)
    assert EVERY_ENV in lines[0] and repr(value) in lines[0] and "using 10 s" in lines[0]
    assert [line.split(" ")[1] for line in lines[1:]] == ["0/100", "10/100"]


def test_no_progress_silences_everything(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(NO_PROGRESS_ENV, "1")
    monkeypatch.setenv(EVERY_ENV, "0")
    with status("loading"), stages("circuit") as report:
        report("eap", 0, 2)
        report("eap", 2, 2)
    assert list(progress(range(3), "x")) == [0, 1, 2]
    assert capsys.readouterr() == ("", "")


# ---- every long command, on tiny inputs, with --json --------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tiny: TinyModels) -> Path:
    return tiny.text_folder(layers=2)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    rows = [
        {"clean": "the cat sat on the", "corrupted": "the dog sat on the", "correct": "m", "incorrect": "r"},
        {"clean": "a cat is on a", "corrupted": "a dog is on a", "correct": "m", "incorrect": "r"},
        {"clean": "my cat ran to the", "corrupted": "my dog ran to the", "correct": "d", "incorrect": "p"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run_json(args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[dict, list[str]]:
    """Run a command with --json and a progress line at every report; the JSON and the stderr lines."""
    monkeypatch.setenv(EVERY_ENV, "0")
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # stdout holds the JSON document and nothing else
    return payload, _lines(result.stderr)


def _assert_progress(lines: list[str], prefix: str) -> None:
    """Periodic lines with counts and a time-left estimate, then a final line, for a stage under ``prefix``."""
    periodic = [m for line in lines if (m := PERIODIC.match(line)) and m["stage"].startswith(prefix)]
    finals = [m for line in lines if (m := FINAL.match(line)) and m["stage"].startswith(prefix)]
    assert periodic, f"no periodic {prefix!r} line in {lines}"
    assert any(int(m["done"]) < int(m["total"]) for m in periodic)
    assert finals and all(m["done"] == m["total"] for m in finals), lines


def test_steer_reports_the_sweep_and_the_generations(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload, lines = _run_json(
        ["steer", "--model", str(folder), "--positive", "y", "--negative", "n", "--layers", "0-1", "--coeffs", "0,4",
         "--prompt", "i am", "--targets", "y", "--max-new-tokens", "2", "--out", str(tmp_path / "s.html")],
        monkeypatch,
    )  # fmt: skip
    assert len(payload["sweep"]["effect"]) == 2
    _assert_progress(lines, "steer: steering sweep")
    assert any(FINAL.match(line) and line.startswith("steer: generating 3 x 2 tokens") for line in lines)


@pytest.mark.parametrize("method", ["eap", "acdc"])
def test_circuit_reports_every_stage_with_counts(
    method: str, folder: Path, pairs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload, lines = _run_json(
        ["circuit", "--model", str(folder), "--task", str(pairs), "--method", method, "--threshold", "0.5",
         "--batch-size", "2", "--out", str(tmp_path / "c.json")],
        monkeypatch,
    )  # fmt: skip
    assert payload["method"] == method
    _assert_progress(lines, f"circuit: {method}")
    if method == "eap":
        _assert_progress(lines, "circuit: faithfulness")
    else:  # the acdc total is the graph's edge count, every one of them tried or pruned
        final = next(m for line in lines if (m := FINAL.match(line)) and m["stage"] == "circuit: acdc")
        assert int(final["total"]) == payload["n_edges_total"]


def test_lab_grokking_reports_training_steps_under_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload, lines = _run_json(
        ["lab", "grokking", "--steps", "4", "--p", "7", "--checkpoint-every", "2", "--out", str(tmp_path)], monkeypatch
    )
    assert payload["config"]["p"] == 7
    _assert_progress(lines, "lab grokking: grokking")
    assert any(line.startswith("lab grokking: grokking 4/4 (100%), done in") for line in lines)
    _assert_progress(lines, "lab grokking: restricted and excluded loss")


def test_lab_grokking_stopped_early_still_ends_its_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from circuitscope.toy.grokking_lab import GrokkingConfig, run_grokking

    calls: list[tuple[str, int, int]] = []
    cfg = GrokkingConfig(p=7, steps=40, checkpoint_every=1, stop_when_generalised=True, lr=1e-9)
    monkeypatch.setattr("circuitscope.toy.grokking_lab.GENERALISED", 1e9)  # the first chunk counts as generalised
    run_grokking(cfg, tmp_path, on_progress=lambda *call: calls.append(call))
    training = [c for c in calls if c[0] == "grokking"]
    assert training[0] == ("grokking", 0, 40) and all(total == 40 for _, _, total in training[:-1])
    assert training[-1] == ("grokking", 5, 5)  # stopped after one chunk of 5 checkpoints: the stage completes


def test_lab_induction_reports_training_and_ablation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["lab", "induction", "--steps", "3", "--layers", "1", "--out", str(tmp_path)]
    payload, lines = _run_json(args, monkeypatch)
    assert list(payload["models"]) == ["1_layer"]
    _assert_progress(lines, "lab induction: 1-layer")
    assert any(line.startswith("lab induction: 1-layer 3/3 (100%), done in") for line in lines)
    assert any(FINAL.match(line) and "1-layer: mean-ablating" in line for line in lines)


def test_lab_superposition_reports_each_experiment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload, lines = _run_json(
        ["lab", "superposition", "--steps", "3", "--batch-size", "16", "--out", str(tmp_path)], monkeypatch
    )
    assert payload["inverse_density"][0] == 1.0
    for stage in ("superposition 5->2", "superposition 20->5", "geometry 200->20", "phase diagram 2->1"):
        _assert_progress(lines, f"lab superposition: {stage}")


def test_sae_collect_and_train_report_progress(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat. the dog ran to the park, and the bird sang a song.\n" * 30)
    acts, out = tmp_path / "acts", tmp_path / "sae"
    collected, lines = _run_json(
        ["sae", "collect", "--model", str(folder), "--corpus", str(corpus), "--hook", "blocks.1.hook_resid_post",
         "--tokens", "600", "--context-size", "16", "--batch-size", "8", "--out", str(acts)],
        monkeypatch,
    )  # fmt: skip
    assert collected["n_tokens"] == 600
    _assert_progress(lines, "Collecting blocks.1.hook_resid_post")
    trained, lines = _run_json(
        ["sae", "train", "--acts", str(acts), "--k", "2", "--expansion", "2", "--tokens", "1000",
         "--batch-size", "200", "--out", str(out)],
        monkeypatch,
    )  # fmt: skip
    assert trained["steps"] == 5
    _assert_progress(lines, "sae train: training SAE")


def test_trace_reports_each_kind(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload, lines = _run_json(
        ["trace", "--model", str(folder), "--prompt", "the cat sat on the mat", "--subject", "cat",
         "--samples", "2", "--window", "1", "--batch-rows", "8", "--out", str(tmp_path / "t.html")],
        monkeypatch,
    )  # fmt: skip
    assert set(payload["traces"]) == {"resid", "mlp", "attn"}
    for kind in ("resid", "mlp", "attn"):
        _assert_progress(lines, f"trace: causal trace ({kind})")


def test_heads_reports_its_stages(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat and the dog sat on the log. " * 60)
    payload, lines = _run_json(
        ["heads", str(folder), "--seq-len", "6", "--batch", "2", "--n-tokens", "20", "--text", str(text),
         "--text-tokens", "1024", "--text-window", "16"],
        monkeypatch,
    )  # fmt: skip
    assert len(payload["induction"]) == 2  # [n_layers][n_heads]
    finals = [m["stage"] for line in lines if (m := FINAL.match(line))]
    assert "heads: attention detectors on repeated random tokens" in finals
    assert any(stage.startswith("heads: head ablation and max-activating") for stage in finals)  # the last stage ends
    _assert_progress(lines, "heads: mean-ablating each head")


def test_report_task_reports_the_patching(
    folder: Path, pairs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload, lines = _run_json(
        ["report", "task", "--model", str(folder), "--pairs", str(pairs), "--batch-rows", "4",
         "--out", str(tmp_path / "r.html")],
        monkeypatch,
    )  # fmt: skip
    assert "logit_diff" in payload
    _assert_progress(lines, "patching head_out")
    _assert_progress(lines, "patching resid_pre")
