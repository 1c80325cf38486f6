"""Bad input to the ``circuitscope`` command: refused before any work, with a clear message, results never lost."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import circuitscope.cli as cli_package
from circuitscope._version import __version__
from circuitscope.cli.main import app
from tests.tiny_models import TinyModels

runner = CliRunner()
PAIRS = (
    '{"clean": "the cat is", "corrupted": "the dog is", "correct": "a", "incorrect": "b"}\n'
    '{"clean": "the cow is", "corrupted": "the pig is", "correct": "c", "incorrect": "d"}\n'
)


@pytest.fixture(scope="module")
def folder(tiny: TinyModels) -> Path:
    return tiny.text_folder()


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No progress lines; default output paths land in the test's folder."""
    monkeypatch.setenv("CIRCUITSCOPE_NO_PROGRESS", "1")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Loading a model (or training, or fetching vectors) records the call and stops the command."""
    import importlib
    import pkgutil

    import circuitscope.core.loading as loading
    import circuitscope.embeddings as embeddings
    import circuitscope.toy.grokking_lab as grokking
    import circuitscope.toy.induction as induction
    import circuitscope.toy.superposition_lab as superposition

    calls: list[str] = []

    def stop(*args: Any, **kwargs: Any) -> Any:
        calls.append(str(args[:1]))
        raise RuntimeError("work started")

    monkeypatch.setattr(loading, "load_model", stop)
    for info in pkgutil.iter_modules(cli_package.__path__):  # modules that imported load_model by name
        module = importlib.import_module(f"{cli_package.__name__}.{info.name}")
        if hasattr(module, "load_model"):
            monkeypatch.setattr(module, "load_model", stop)
    monkeypatch.setattr(embeddings, "load_glove_6b_50d", stop)
    monkeypatch.setattr(superposition, "sparsity_sweep", stop)
    monkeypatch.setattr(grokking, "run_grokking", stop)
    monkeypatch.setattr(induction, "run_induction", stop)
    return calls


def _files(tmp_path: Path) -> dict[str, str]:
    pairs, text, questions = tmp_path / "pairs.jsonl", tmp_path / "t.txt", tmp_path / "q.jsonl"
    pairs.write_text(PAIRS)
    text.write_text("the cat sat on the mat.")
    questions.write_text('{"question": "is 2 > 1", "options": ["yes", "no"], "answer": "yes"}\n')
    return {"pairs": str(pairs), "text": str(text), "questions": str(questions), "missing": str(tmp_path / "none")}


# (command line with OUT for the output path, "file" or "dir")
OUTPUTS: dict[str, tuple[list[str], str]] = {
    "report ioi": (["report", "ioi", "--out", "OUT"], "file"),
    "report task": (["report", "task", "--pairs", "{pairs}", "--out", "OUT"], "file"),
    "heads --html": (["heads", "m", "--html", "OUT"], "file"),
    "circuit --out": (["circuit", "--task", "{pairs}", "--out", "OUT"], "file"),
    "circuit --html": (["circuit", "--task", "{pairs}", "--html", "OUT"], "file"),
    "trace": (["trace", "--prompt", "the cat sat", "--subject", "cat", "--out", "OUT"], "file"),
    "steer --out": (["steer", "--out", "OUT"], "file"),
    "steer --save-vector": (["steer", "--save-vector", "OUT"], "file"),
    "sae collect": (["sae", "collect", "--out", "OUT"], "dir"),
    "sae train": (["sae", "train", "--acts", "{missing}", "--out", "OUT"], "dir"),
    "sae dashboard": (["sae", "dashboard", "--sae", "{missing}", "--out", "OUT"], "file"),
    "lab superposition": (["lab", "superposition", "--steps", "1", "--out", "OUT"], "dir"),
    "lab grokking": (["lab", "grokking", "--steps", "1", "--out", "OUT"], "dir"),
    "lab induction": (["lab", "induction", "--steps", "1", "--out", "OUT"], "dir"),
    "diff": (["diff", "--a", "x", "--b", "y", "--text", "{text}", "--out", "OUT"], "file"),
    "probe": (["probe", "--out", "OUT"], "file"),
    "analogies": (["analogies", "--embeddings", "glove-6b-50d", "--out", "OUT"], "file"),
    "eval-prompts": (["eval-prompts", "{questions}", "--out", "OUT"], "file"),
}


def _bad_output(kind: str, wanted: str, tmp_path: Path) -> tuple[Path, str]:
    """An output path that cannot be used, and a phrase the refusal must contain."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    if kind == "parent is a file":
        return blocker / "sub" / "out", "is a file, not a folder"
    if wanted == "file":
        folder = tmp_path / "a-folder"
        folder.mkdir()
        return folder, "is a folder, but a file is expected"
    return blocker, "is a file, but a folder is expected"


@pytest.mark.parametrize("kind", ["parent is a file", "wrong kind"])
@pytest.mark.parametrize("command", list(OUTPUTS))
def test_an_unusable_output_path_is_refused_before_any_work(
    command: str, kind: str, tmp_path: Path, no_work: list[str]
) -> None:
    template, wanted = OUTPUTS[command]
    out, phrase = _bad_output(kind, wanted, tmp_path)
    files = _files(tmp_path)
    args = [str(out) if a == "OUT" else a.format(**files) for a in template]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    assert payload["error"] == "OutputError" and phrase in payload["message"] and str(out) in payload["message"]
    assert no_work == []


def test_a_missing_output_folder_is_created_only_when_written(folder: Path, tmp_path: Path) -> None:
    refused = tmp_path / "never" / "r.html"
    result = runner.invoke(app, ["report", "ioi", "--model", str(tmp_path / "no-model"), "--out", str(refused)])
    assert result.exit_code == 1 and not (tmp_path / "never").exists()  # a failed run leaves no folders behind
    out = tmp_path / "new" / "deeper" / "steer.html"
    args = ["steer", "--model", str(folder), "--layers", "0", "--coeffs", "1", "--positive", "y", "--negative", "n",
            "--targets", "y", "--max-new-tokens", "2", "--out", str(out), "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert out.is_file() and json.loads(result.stdout)["report"] == str(out)


def _disk_full(*args: Any, **kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, "No space left on device")


WRITES_AFTER_WORK = {
    "steer": (["steer", "--layers", "0", "--coeffs", "1", "--positive", "y", "--negative", "n", "--targets", "y",
               "--max-new-tokens", "2", "--out", "OUT"], "sweep", "report"),
    "trace": (["trace", "--prompt", "the cat sat", "--subject", "cat", "--kind", "resid", "--samples", "2",
               "--out", "OUT"], "traces", "report"),
    "circuit": (["circuit", "--task", "{pairs}", "--method", "eap", "--no-curve", "--edges", "5", "--out", "OUT"],
                "edges", "circuit"),
    "lab grokking": (["lab", "grokking", "--steps", "2", "--p", "7", "--out", "OUT"], "test_loss", "report"),
}  # fmt: skip


@pytest.mark.parametrize("command", list(WRITES_AFTER_WORK))
def test_a_write_that_fails_after_the_work_keeps_the_numbers(
    command: str, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from circuitscope.circuits.circuit import Circuit
    from circuitscope.cli import lab
    from circuitscope.report.html import Report

    monkeypatch.setattr(Report, "write", _disk_full)
    monkeypatch.setattr(Circuit, "save", _disk_full)
    monkeypatch.setattr(lab, "_write_json", _disk_full)
    template, numbers, written = WRITES_AFTER_WORK[command]
    out = tmp_path / ("lab" if command.startswith("lab") else "out.html")
    args = [str(out) if a == "OUT" else a.format(**_files(tmp_path)) for a in template]
    model = [] if command.startswith("lab") else ["--model", str(folder)]
    result = runner.invoke(app, [*args, *model, "--json"])
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    assert payload[numbers] and payload[written] is None  # the numbers are there, the file is not
    assert payload["error"] == "OutputError"
    assert "No space left on device" in payload["message"] and str(out) in payload["message"]


def test_a_failed_write_for_people_prints_the_summary_then_the_error(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from circuitscope.report.html import Report

    monkeypatch.setattr(Report, "write", _disk_full)
    out = tmp_path / "steer.html"
    args = ["steer", "--model", str(folder), "--layers", "0", "--coeffs", "1", "--positive", "y", "--negative", "n",
            "--targets", "y", "--max-new-tokens", "2", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "unsteered" in result.stdout and "c=1" in result.stdout  # the summary
    assert "could not write the HTML report" in result.stderr and str(out) in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("command", ["collect", "train"])
def test_a_write_that_fails_while_storing_is_a_clear_error(
    command: str, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import circuitscope.sae as sae

    monkeypatch.setattr(sae, "collect_activations", _disk_full)
    monkeypatch.setattr(sae, "train_sae", _disk_full)
    monkeypatch.setattr(sae, "ActivationStore", lambda path: None)
    out = tmp_path / "out"
    corpus = _files(tmp_path)["text"]
    args = {
        "collect": ["--model", str(folder), "--hook", "blocks.1.hook_resid_post", "--corpus", corpus],
        "train": ["--acts", "a"],
    }
    result = runner.invoke(app, ["sae", command, *args[command], "--out", str(out), "--json"])
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    assert payload["error"] == "OutputError" and str(out) in payload["message"]
    assert "No space left on device" in payload["message"] and "resumes" in payload["message"]


MARKUP = {
    "run --names": (["run", "MODEL", "x", "--names", "[/]"], 1, "[/]"),
    "trace --subject": (["trace", "--model", "MODEL", "--prompt", "the cat sat", "--subject", "The [/] Tower"], 1,
                        "The [/] Tower"),
    "trace --prompt (summary)": (["trace", "--model", "MODEL", "--prompt", "[/] the cat [bold]", "--subject", "cat",
                                  "--kind", "resid", "--samples", "2", "--out", "OUT"], 0, "[/] the cat [bold]"),
    "analogy expression": (["analogy", "[/] - - man", "--model", "MODEL"], 1, "[/] - - man"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MARKUP))
def test_user_text_is_printed_as_text_never_as_markup(case: str, folder: Path, tmp_path: Path) -> None:
    template, code, shown = MARKUP[case]
    args = [str(folder) if a == "MODEL" else str(tmp_path / "t.html") if a == "OUT" else a for a in template]
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    printed = result.stderr if code else result.stdout
    assert " ".join(shown.split()) in " ".join(printed.split())  # rich wraps long lines at spaces


BEFORE_LOAD = {  # (arguments, error type, phrase of the message)
    "steer --end-pos before --start-pos": (["steer", "--start-pos", "3", "--end-pos", "1"], "OptionError",
                                           "--end-pos 1 is not after --start-pos 3"),
    "steer --end-pos equal to --start-pos": (["steer", "--start-pos", "2", "--end-pos", "2"], "OptionError",
                                             "--end-pos 2"),
    "steer --coeffs": (["steer", "--coeffs", "1,x"], "BadParameter", "expected numbers"),
    "circuit --method": (["circuit", "--method", "bogus"], "CircuitError", "eap, eap-ig, acdc"),
    "circuit --ablation": (["circuit", "--ablation", "bogus"], "CircuitError", "unknown ablation"),
    "circuit --target": (["circuit", "--target", "2"], "CircuitError", "(0, 1.5]"),
    "circuit --threshold": (["circuit", "--method", "acdc", "--threshold", "-1"], "CircuitError", "--threshold"),
    "circuit --task missing jsonl": (["circuit", "--task", "{missing}.jsonl"], "TaskError", "does not exist"),
    "circuit --task unknown": (["circuit", "--task", "bogus"], "CircuitError", "unknown task"),
    "circuit-eval missing circuit": (["circuit-eval", "{missing}"], "CircuitError", "no circuit file"),
    "report ioi --corruption": (["report", "ioi", "--corruption", "bogus"], "BadParameter", "'abc' or 'swap'"),
    "report task --pairs missing": (["report", "task", "--pairs", "{missing}"], "TaskError", "is not a file"),
    "trace --heads-at": (["trace", "--prompt", "a b", "--subject", "a", "--heads", "--heads-at", "middle"],
                         "OptionError", "--heads-at"),
    "heads --text missing": (["heads", "m", "--text", "{missing}"], "TextSourceError", "no such file"),
    "heads --ablation": (["heads", "m", "--ablation", "resample"], "ValueError", "'mean' or 'zero'"),
    "diff --alphas": (["diff", "--a", "x", "--b", "y", "--text", "{text}", "--alphas", "0,x"], "BadParameter",
                      "expected numbers"),
    "eval-prompts --framings-file missing": (["eval-prompts", "{questions}", "--framings-file", "{missing}"],
                                             "EvalSetError", "is not a file"),
    "sae collect --corpus missing": (["sae", "collect", "--out", "{missing}", "--corpus", "{missing}.txt"],
                                     "SAEConfigError", "does not exist"),
    "lab induction --layers too deep": (["lab", "induction", "--layers", "1,99", "--out", "{missing}"],
                                        "LabConfigError", "1..12"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BEFORE_LOAD))
def test_a_bad_option_is_refused_before_the_model_loads(case: str, tmp_path: Path, no_work: list[str]) -> None:
    template, error, phrase = BEFORE_LOAD[case]
    files = _files(tmp_path)
    result = runner.invoke(app, [*[a.format(**files) for a in template], "--json"])
    assert result.exit_code in (1, 2), result.output  # 2: typer's own option errors
    payload = json.loads(result.stdout)
    assert payload["error"] == error and phrase in payload["message"], payload
    assert no_work == []


STATIC_RANGES = {  # typer's min/max: exit code 2, JSON under --json
    "run --top-k 0": ["run", "m", "x", "--top-k", "0"],
    "heads --batch -1": ["heads", "m", "--batch", "-1"],
    "trace --samples 0": ["trace", "--samples", "0"],
    "steer --start-pos -1": ["steer", "--start-pos", "-1"],
    "sae train --d-sae 0": ["sae", "train", "--acts", "a", "--out", "o", "--d-sae", "0"],
    "sae train --sparsity -1": ["sae", "train", "--acts", "a", "--out", "o", "--sparsity", "-1"],
    "probe --n-per-topic 100": ["probe", "--n-per-topic", "100"],
    "circuit --edges -3": ["circuit", "--edges", "-3"],
}


@pytest.mark.parametrize("case", list(STATIC_RANGES))
def test_a_count_out_of_its_static_range_is_refused(case: str, no_work: list[str]) -> None:
    result = runner.invoke(app, [*STATIC_RANGES[case], "--json"])
    assert result.exit_code == 2, result.output
    payload = json.loads(result.stdout)
    assert payload["error"] == "BadParameter" and case.split()[-2] in payload["message"]
    assert no_work == []


AFTER_LOAD = {  # need the model (vocabulary, layers, prompt length), checked before any forward pass
    "run --top-k above the vocabulary": (["run", "MODEL", "x", "--top-k", "100000"], "vocabulary of 52 tokens"),
    "trace --neurons beyond the layers": (["trace", "--model", "MODEL", "--prompt", "the cat", "--subject", "cat",
                                           "--neurons", "5"], "--neurons 5 is not a layer"),
    "trace --heads-at beyond the prompt": (["trace", "--model", "MODEL", "--prompt", "the cat", "--subject", "cat",
                                            "--heads", "--heads-at", "40"], "--heads-at 40"),
    "circuit --edges beyond the graph": (["circuit", "--model", "MODEL", "--task", "{pairs}", "--method", "eap",
                                          "--edges", "100000"], "--edges 100000"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(AFTER_LOAD))
def test_a_value_that_does_not_fit_the_model_is_refused_before_any_forward_pass(
    case: str, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from circuitscope.core.hooked_model import HookedModel

    forwards: list[int] = []
    original = HookedModel.__call__

    def counted(self: HookedModel, *args: Any, **kwargs: Any) -> Any:
        forwards.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(HookedModel, "__call__", counted)
    monkeypatch.setattr(HookedModel, "run_with_cache", lambda *a, **k: forwards.append(1))
    template, phrase = AFTER_LOAD[case]
    files = _files(tmp_path)
    args = [str(folder) if a == "MODEL" else a.format(**files) for a in template]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    assert payload["error"] in ("OptionError", "CircuitError") and phrase in payload["message"], payload
    assert forwards == []


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"circuitscope {__version__}\n"


@pytest.mark.slow
def test_sae_train_and_eval_report_the_same_mse(folder: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("shall i compare thee to a summer's day? thou art more lovely and more temperate. " * 60)
    acts, out = tmp_path / "acts", tmp_path / "sae"
    model = ["--model", str(folder), "--corpus", str(corpus)]

    def run(args: list[str]) -> dict[str, Any]:
        result = runner.invoke(app, [*args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    run(["sae", "collect", *model, "--hook", "blocks.1.hook_resid_post", "--tokens", "3000", "--context-size", "32",
         "--out", str(acts)])  # fmt: skip
    trained = run(["sae", "train", "--acts", str(acts), "--arch", "topk", "--k", "8", "--expansion", "2",
                   "--tokens", "30000", "--batch-size", "500", "--out", str(out)])  # fmt: skip
    evaluated = run(["sae", "eval", *model, "--sae", str(out), "--contexts", "16"])
    scale = trained["activation_scale"]
    assert evaluated["activation_scale"] == pytest.approx(scale)
    assert scale**2 > 4  # the two units differ, so a mix-up would show
    assert trained["final_mse_per_token"] == pytest.approx(trained["final_mse_per_token_normalized"] / scale**2)
    assert evaluated["mse_per_token_normalized"] == pytest.approx(evaluated["mse_per_token"] * scale**2)
    # the same quantity on other tokens of the same text: close, not a factor activation_scale**2 apart
    ratio = evaluated["mse_per_token"] / trained["final_mse_per_token"]
    assert 1 / 3 < ratio < 3, (evaluated["mse_per_token"], trained["final_mse_per_token"])
    assert "mse" not in evaluated and "final_mse" not in trained  # no unitless name left
    assert "summed over d_in, mean over tokens" in evaluated["mse_units"] == trained["mse_units"]
