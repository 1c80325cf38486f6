"""``circuitscope experts`` on tiny MoE folders: the JSON equals a direct call, the tables, the HTML report,
bad input refused before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circuitscope.analysis.experts import routing_statistics
from circuitscope.cli.main import app
from circuitscope.core.loading import load_model
from tests.browser import open_in_chromium
from tests.tiny_models import TinyModels, char_tokenizer

runner = CliRunner()
TEXTS = ["the cat sat on the mat.", "experts route tokens"]


@pytest.fixture(scope="module")
def moe_folder(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("moe") / "mixtral"
    tiny.hf("mixtral").save_pretrained(path)
    char_tokenizer().save_pretrained(path)
    return path


def _args(folder: Path, *more: str) -> list[str]:
    return ["experts", "--model", str(folder), "--text", TEXTS[0], "--text", TEXTS[1], *more]


def test_json_equals_the_library_and_the_report_is_written(moe_folder: Path, tmp_path: Path) -> None:
    page = tmp_path / "experts.html"
    result = runner.invoke(app, _args(moe_folder, "--json", "--top", "2", "--out", str(page)))
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    expected = routing_statistics(load_model(str(moe_folder)), TEXTS, top=2).to_json()
    assert payload["layers"] == expected["layers"]
    assert payload["n_tokens"] == expected["n_tokens"] and payload["report"] == str(page)
    assert all(sum(layer["counts"]) == payload["n_tokens"] * 2 for layer in payload["layers"])
    html = page.read_text(encoding="utf-8")
    assert "Expert load" in html and "Layer 1" in html and "<script src=" not in html  # plotly.js inlined, no CDN


def test_tables_per_layer_and_one_layer_from_a_file(moe_folder: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("first line of text\n\nsecond line\n", encoding="utf-8")
    result = runner.invoke(app, ["experts", "--model", str(moe_folder), "--file", str(corpus), "--layer", "1"])
    assert result.exit_code == 0, result.output
    assert "2 texts" in result.stdout and "Layer 1" in result.stdout and "Layer 0" not in result.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layer", "7"], "layer 7 has no mixture-of-experts MLP"),
        (["--out", "."], "is a folder"),
    ],
)
def test_bad_options_are_refused(moe_folder: Path, extra: list[str], message: str) -> None:
    result = runner.invoke(app, [*_args(moe_folder, "--json"), *extra])
    assert result.exit_code == 1
    assert message in json.loads(result.stdout)["message"]


def test_no_text_is_refused_before_loading(tmp_path: Path) -> None:
    result = runner.invoke(app, ["experts", "--model", str(tmp_path / "missing"), "--text", "  ", "--json"])
    assert result.exit_code == 1 and "no text to route" in json.loads(result.stdout)["message"]
    result = runner.invoke(app, ["experts", "--model", "x", "--file", str(tmp_path / "none.txt"), "--json"])
    assert "no such file" in json.loads(result.stdout)["message"]


def test_a_dense_model_is_refused(tiny: TinyModels) -> None:
    folder = tiny.text_folder()
    result = runner.invoke(app, ["experts", "--model", str(folder), "--text", "hello"])
    assert result.exit_code == 1
    assert f"{folder} (family llama) has no mixture-of-experts layers" in " ".join(result.output.split())


@pytest.mark.slow
def test_the_report_opens_without_errors(moe_folder: Path, tmp_path: Path) -> None:
    page = tmp_path / "experts.html"
    result = runner.invoke(app, _args(moe_folder, "--out", str(page)))
    assert result.exit_code == 0, result.output
    browser = open_in_chromium(page)
    assert browser.console_errors == []
    assert "Expert load" in browser.dom and "plotly" in browser.dom
