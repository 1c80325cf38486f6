"""`circuitscope transcoders train|eval` end to end on a tiny model; bad input refused before any work."""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circuitscope.cli import transcoders as command
from circuitscope.cli.main import app
from circuitscope.transcoders import TranscoderTrainConfig, load_transcoders
from tests.tiny_models import TinyModels
from tests.transcoders.test_train import TEXT

runner = CliRunner()


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "pangrams.txt"
    path.write_text(TEXT)
    return path


def _json(args: list[str], code: int = 0) -> dict[str, object]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def test_train_then_eval(tiny: TinyModels, corpus_file: Path, tmp_path: Path) -> None:
    model = ["--model", str(tiny.text_folder()), "--corpus", str(corpus_file)]
    out = tmp_path / "tc"
    sizes = ["--d-sae", "48", "--k", "4", "--tokens", "1240", "--context-size", "32", "--batch-contexts", "4"]
    trained = _json(["transcoders", "train", *model, "--out", str(out), *sizes, "--layers", "0-1"])
    assert trained["steps"] == 10 and trained["config"]["layers"] == [0, 1]  # type: ignore[index]
    assert load_transcoders(out).cfg.d_sae == 48
    page = tmp_path / "eval.html"
    evaluated = _json(
        ["transcoders", "eval", str(out), *model, "--contexts", "3", "--context-size", "32", "--html", str(page)]
    )
    assert len(evaluated["layers"]) == 2 and evaluated["tokens"] == 96  # type: ignore[arg-type]
    assert evaluated["html"] == str(page)  # the report of these numbers (tests/transcoders/test_eval_report.py)
    assert f"{evaluated['replaced']['ce']:.4g}</td>" in page.read_text()  # type: ignore[index]
    assert evaluated["replaced_with_error"]["agreement"] == 1.0  # type: ignore[index]
    # another run's folder is refused before any work, with the folder left as it was
    before = sorted(p.name for p in out.iterdir())
    refused = _json(["transcoders", "train", *model, "--out", str(out), *sizes, "--lr", "0.01"], code=1)
    assert refused["error"] == "TranscoderConfigError" and "another run" in str(refused["message"])
    assert sorted(p.name for p in out.iterdir()) == before


@pytest.mark.parametrize(
    ("args", "error", "words"),
    [
        (["--layers", "7"], "BadParameter", "outside the model"),
        (["--k", "99", "--d-sae", "16"], "TranscoderConfigError", "k must be at most d_sae"),
        (["--arch", "gated"], "TranscoderConfigError", "architecture must be one of"),
    ],
)
def test_bad_input_is_refused(tiny: TinyModels, tmp_path: Path, args: list[str], error: str, words: str) -> None:
    out = _json(["transcoders", "train", "--model", str(tiny.text_folder()), "--out", str(tmp_path), *args], code=1)
    assert out["error"] == error and words in str(out["message"])
    assert not (tmp_path / "checkpoints").exists()


def test_cli_defaults_are_the_config_defaults() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(TranscoderTrainConfig)}
    params = inspect.signature(command.train).parameters  # the options generated from the config's fields
    for name in ("kind", "architecture", "k", "expansion", "d_sae", "skip", "tokens", "context_size",
                 "batch_contexts", "lr", "sparsity_coefficient", "seed"):  # fmt: skip
        assert params[name].default == defaults[name], name
    assert params["checkpoint_every"].default == 200  # the command's own: a long run keeps checkpoints
