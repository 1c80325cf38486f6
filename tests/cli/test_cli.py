"""The command line: --json everywhere, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circuitscope.cli.main import app
from tests.tiny_models import TinyModels

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_folder(tiny: TinyModels) -> Path:
    return tiny.folder("llama_gqa")


def test_info_json_lists_config_and_hooks(tiny_folder: Path) -> None:
    result = runner.invoke(app, ["info", str(tiny_folder), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["config"]["family"] == "llama"
    assert payload["config"]["n_kv_heads"] == 2
    assert "blocks.1.attn.hook_pattern" in payload["hook_names"]
    assert payload["n_params"] > 0


def test_info_for_people(tiny_folder: Path) -> None:
    result = runner.invoke(app, ["info", str(tiny_folder)])
    assert result.exit_code == 0, result.output
    assert "hook points" in result.stdout and "n_layers" in result.stdout


def test_a_missing_model_is_a_clear_json_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["info", str(tmp_path / "nope"), "--json"])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["error"] == "LoadError" and "nope" in payload["message"]


def test_run_needs_a_tokenizer(tiny_folder: Path) -> None:
    result = runner.invoke(app, ["run", str(tiny_folder), "hello", "--json"])
    assert result.exit_code == 1
    assert "tokenizer" in json.loads(result.stdout)["message"]


@pytest.mark.real
def test_run_on_the_embedded_model() -> None:
    result = runner.invoke(app, ["run", "gemma-3-270m", "--json", "--names", "blocks.*.hook_resid_post"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["predictions"][0]["token"] == " Mary"
    assert payload["cached_activations"] == 18
    assert payload["tokens"][0] == "<bos>"


def test_every_command_group_is_registered() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for command in (
        "info",
        "run",
        "report",
        "lab",
        "sae",
        "steer",
        "analogies",
        "analogy",
        "diff",
        "eval-prompts",
        "probe",
        "circuit",
        "circuit-eval",
        "heads",
        "trace",
        "patch",
        "experts",
        "transcoders",
        "graph",
        "study",
    ):
        assert command in result.stdout, command
