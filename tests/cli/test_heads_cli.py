"""``circuitscope heads`` on a tiny model folder: JSON keys and shapes, the HTML report, bad input;
with ``--text``: ablation importance equal to a direct call, max-activating examples, bad text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner, Result

from circuitscope.analysis._max_activating import Unit, activations_of
from circuitscope.analysis.head_ablation import head_ablation_importance
from circuitscope.cli.main import app
from circuitscope.core.loading import load_model
from tests.browser import open_in_chromium
from tests.tiny_models import TinyModels

runner = CliRunner()
DETECTORS = ("previous_token", "duplicate_token", "induction", "copying", "copy_suppression")


@pytest.fixture(scope="module")
def tiny_folder(tiny: TinyModels) -> Path:
    return tiny.folder("gpt2")


@pytest.mark.slow
def test_json_has_every_detector_as_a_layer_by_head_array(tiny_folder: Path, tmp_path: Path) -> None:
    page = tmp_path / "heads.html"
    result = runner.invoke(
        app, ["heads", str(tiny_folder), "--json", "--html", str(page), "--seq-len", "8", "--batch", "3", "--top", "3"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    model = load_model(str(tiny_folder))
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    for name in DETECTORS:
        scores = payload[name]
        assert len(scores) == n_layers and all(len(row) == n_heads for row in scores)
        assert all(0.0 <= x <= 1.0 for row in scores for x in row)
        top = payload["top"][name]
        assert len(top) == 3
        assert [t["score"] for t in top] == sorted((x for row in scores for x in row), reverse=True)[:3]
        assert scores[top[0]["layer"]][top[0]["head"]] == top[0]["score"]
    comp = payload["composition"]
    assert set(comp["top"]) == {"q", "k", "v"}
    assert comp["baseline_theory"] == pytest.approx(model.cfg.d_model**-0.5)
    assert all(t["from"][0] < t["to"][0] for t in comp["top"]["k"])
    assert payload["report"] == str(page)
    browser = open_in_chromium(page)
    assert browser.console_errors == []
    assert "Top heads per detector" in browser.dom and "plotly" in browser.dom


def test_no_composition_and_text_output(tiny_folder: Path) -> None:
    result = runner.invoke(app, ["heads", str(tiny_folder), "--no-composition", "--seq-len", "6", "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert "induction" in result.stdout and "composition" not in result.stdout.lower()
    result = runner.invoke(app, ["heads", str(tiny_folder), "--json", "--no-composition", "--seq-len", "6"])
    assert json.loads(result.stdout)["composition"] is None


def test_bad_model_name_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["heads", str(tmp_path / "no-such-model"), "--json"])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["error"] == "LoadError"
    assert "no-such-model" in payload["message"]


# ---------------------------------------------------------------------------- --text: ablation, max-activating
WINDOW = 32
TEXT = ("the cat sat on the mat and the dog ran to the cat, then the cat ran to the mat and sat. " * 2)[
    : 3 * (WINDOW - 1)
]  # exactly three windows of 31 characters (one token each) after BOS


@pytest.fixture(scope="module")
def text_folder(tiny: TinyModels) -> Path:
    """A tiny Llama with a character tokenizer, saved as a model folder."""
    return tiny.text_folder(layers=2)


def _heads_on_text(folder: Path, text: Path, *extra: str) -> Result:
    args = ["heads", str(folder), "--json", "--text", str(text), "--text-window", str(WINDOW), "--text-tokens", "96",
            "--seq-len", "6", "--batch", "2", "--n-tokens", "40", "--top", "3", "--no-composition", *extra]  # fmt: skip
    return runner.invoke(app, args)


def test_text_adds_ablation_importance_and_max_activating_examples(text_folder: Path, tmp_path: Path) -> None:
    source = tmp_path / "cats.txt"
    source.write_text(TEXT, encoding="utf-8")
    page = tmp_path / "heads.html"
    result = _heads_on_text(text_folder, source, "--examples", "3", "--html", str(page))
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    model = load_model(str(text_folder))
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    assert payload["text"] == {
        "source": str(source), "name": str(source), "n_contexts": 3, "window": WINDOW, "n_tokens": 96,
        "has_bos": True, "seed": 0,
    }  # fmt: skip
    # the same tokens, built here without circuitscope's corpus code: BOS + 31 characters per context
    ids = model.tokenizer.encode(TEXT, add_special_tokens=False)
    assert len(ids) == len(TEXT)
    bos = model.tokenizer.bos_token_id
    tokens = torch.tensor([[bos, *ids[i : i + WINDOW - 1]] for i in range(0, len(ids), WINDOW - 1)])
    direct = head_ablation_importance(model, tokens, "mean")
    importance = payload["ablation_importance"]
    assert len(importance) == n_layers and all(len(row) == n_heads for row in importance)
    # the contexts are shuffled: equal up to float summation order
    assert torch.tensor(importance) == pytest.approx(direct.loss_increase, abs=1e-5)
    ablation = payload["ablation"]
    assert ablation["method"] == "mean" and ablation["start_pos"] == 0
    assert ablation["clean_loss"] == pytest.approx(direct.clean_loss, abs=1e-5)
    top = ablation["top"]
    assert [t["loss_increase"] for t in top] == sorted((x for row in importance for x in row), reverse=True)[:3]
    for row in top:  # detector scores beside each important head
        assert set(row["scores"]) == set(DETECTORS)
        for name in DETECTORS:
            assert row["scores"][name] == pytest.approx(payload[name][row["layer"]][row["head"]])
            in_top = any((t["layer"], t["head"]) == (row["layer"], row["head"]) for t in payload["top"][name])
            assert (name in row["top_in"]) == in_top

    found = payload["max_activating"]
    assert found["k"] == 3 and found["n_positions"] == 93  # BOS positions are not examples
    kinds = {h["kind"]: h for h in found["heads"]}
    assert list(kinds) == [*DETECTORS, "ablation"]
    for name in DETECTORS:
        assert [kinds[name]["layer"], kinds[name]["head"]] == [payload["top"][name][0][x] for x in ("layer", "head")]
    assert (kinds["ablation"]["layer"], kinds["ablation"]["head"]) == (top[0]["layer"], top[0]["head"])
    for entry in found["heads"]:
        acts = activations_of(model, tokens, Unit("head", entry["layer"], entry["head"]))
        examples = entry["examples"]
        assert [e["activation"] for e in examples] == pytest.approx(acts[:, 1:].flatten().topk(3).values, rel=1e-5)
        for e in examples:  # a real context of the text, the highlighted token at the example's position
            assert e["pos"] >= 1
            lo = e["pos"] - e["highlight"]
            rows = [r for r in range(3) if _str_tokens(model, tokens[r, lo : lo + len(e["context"])]) == e["context"]]
            assert any(float(acts[r, e["pos"]]) == pytest.approx(e["activation"], rel=1e-5) for r in rows)

    browser = open_in_chromium(page)
    assert browser.console_errors == []
    assert "Head ablation importance" in browser.dom and "Heads that matter most on the text" in browser.dom
    assert "Max-activating examples of the top heads" in browser.dom
    assert browser.dom.count("rgba(53,88,212,0.85)") == 3 * len(found["heads"])  # one highlighted token per example


def _str_tokens(model: Any, ids: torch.Tensor) -> list[str]:
    return [str(t) for t in model.to_str_tokens(ids, prepend_bos=False)]


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "no such file"), ("", "has no text"), ("the cat sat", "fewer than one context")],
)
def test_bad_text_is_a_clear_error(text_folder: Path, tmp_path: Path, content: str | None, expected: str) -> None:
    source = tmp_path / "text.txt"
    if content is not None:
        source.write_text(content, encoding="utf-8")
    result = _heads_on_text(text_folder, source)
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["error"] == "TextSourceError"
    assert expected in payload["message"] and str(source) in payload["message"]


def test_bad_ablation_method_is_a_clear_error(text_folder: Path, tmp_path: Path) -> None:
    result = _heads_on_text(text_folder, tmp_path / "unused.txt", "--ablation", "resample")
    assert result.exit_code == 1
    assert "'mean' or 'zero'" in json.loads(result.stdout)["message"]
