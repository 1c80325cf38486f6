"""``circuitscope trace --facts FILE``: the library's fact-set traces as JSON and an HTML page, refusals of a
missing or malformed fact file (and of single-prompt options) before the model loads, and a ``torchrun``
launch of 2 ranks printing (once) what one process prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import circuitscope as cs
from circuitscope.analysis.tracing_facts import trace_facts
from circuitscope.cli.main import app
from circuitscope.tasks.facts import load_facts
from tests.cli._launch import one_thread, torchrun
from tests.tiny_models import TinyModels

runner = CliRunner()
FACTS = """{"format": "circuitscope-facts", "version": 1}
{"subject": "cat", "relation": "sits", "template": "the {} sat on the", "object": " mat"}
{"subject": "big dog", "relation": "lies", "template": "a {} lay on a", "object": " rug"}
{"subject": "hen", "relation": "sits", "template": "one {} sat in the", "object": " barn"}
"""


@pytest.fixture(scope="module")
def folder(tiny: TinyModels) -> Path:
    return tiny.text_folder()


@pytest.fixture
def facts(tmp_path: Path) -> Path:
    """The three facts in a file."""
    path = tmp_path / "facts.jsonl"
    path.write_text(FACTS)
    return path


def _args(folder: Path | str, facts: Path, out: Path, *extra: str) -> list[str]:
    return ["trace", "--model", str(folder), "--facts", str(facts), "--samples", "2", "--window", "2",
            "--out", str(out), *extra]  # fmt: skip


def test_trace_facts_prints_the_library_result(folder: Path, facts: Path, tmp_path: Path) -> None:
    out = tmp_path / "facts.html"
    result = runner.invoke(app, [*_args(folder, facts, out, "--kind", "resid"), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    expected = trace_facts(cs.load_model(str(folder)), load_facts(facts), kind="resid", n_samples=2, window=2)
    assert payload["kinds"]["resid"] == json.loads(json.dumps(expected.to_json()))
    assert payload["facts"] == str(facts) and payload["report"] == str(out)
    assert [t["subject"] for t in payload["kinds"]["resid"]["traces"]] == ["cat", "big dog", "hen"]
    page = out.read_text()
    assert "Mean indirect effect by layer" in page and page.count("plotly-graph-div") >= 4  # the mean + 3 facts
    words = runner.invoke(app, _args(folder, facts, out, "--kind", "mlp"))
    assert words.exit_code == 0, words.output
    assert "3 facts traced" in words.stdout and "mlp   at the subject last token" in words.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "does not exist"),
        ('{"subject": "cat"}\n', "the first line must be the header"),
        (FACTS.splitlines()[0] + "\n{not json\n", "not valid JSON"),
        (FACTS.splitlines()[0] + "\n", "the file has a header but no facts"),
    ],
)
def test_a_missing_or_malformed_fact_file_is_refused_before_the_model_loads(
    tmp_path: Path, text: str | None, message: str
) -> None:
    facts = tmp_path / "facts.jsonl"
    if text is not None:
        facts.write_text(text)
    result = runner.invoke(app, [*_args(tmp_path / "no-model", facts, tmp_path / "o.html"), "--json"])
    assert result.exit_code != 0
    assert message in result.output and "no-model" not in result.output  # the model was never looked for


def test_single_prompt_options_are_refused_with_facts(facts: Path, tmp_path: Path) -> None:
    args = [*_args(tmp_path / "no-model", facts, tmp_path / "o.html"), "--prompt", "the cat", "--heads"]
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert "drop --prompt and --heads, or drop --facts" in result.output


@pytest.mark.slow  # two spawned processes importing torch and transformers (~15 s busy)
def test_torchrun_trace_facts_equals_one_process(folder: Path, facts: Path, tmp_path: Path) -> None:
    launched = torchrun(_args(folder, facts, tmp_path / "ranks.html", "--kind", "resid", "--json"))
    assert launched.returncode == 0, launched.stderr[-3000:]
    printed = json.loads(launched.stdout)  # one JSON document: only rank 0 printed
    alone = json.loads(one_thread(app, _args(folder, facts, tmp_path / "one.html", "--kind", "resid", "--json")).stdout)
    assert printed["kinds"] == alone["kinds"]
