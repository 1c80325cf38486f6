"""The `circuitscope sae` commands end to end on a tiny model, and the dashboard in headless Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import circuitscope as cs
from circuitscope import sae as S  # noqa: N812
from circuitscope.cli.main import app
from circuitscope.report.sae_dashboard import write_dashboard
from circuitscope.sae.dashboard import parse_features
from tests.browser import open_in_chromium
from tests.sae.conftest import TEXT

runner = CliRunner()
HOOK = "blocks.1.hook_resid_post"


def _json(args: list[str]) -> dict[str, object]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_collect_train_eval_dashboard(tiny_folder: Path, corpus_file: Path, tmp_path: Path) -> None:
    model = ["--model", str(tiny_folder), "--corpus", str(corpus_file)]
    acts, out, page = tmp_path / "acts", tmp_path / "sae", tmp_path / "dash.html"
    collected = _json(["sae", "collect", *model, "--hook", HOOK, "--tokens", "2000", "--context-size", "32",
                       "--tokens-per-shard", "700", "--out", str(acts)])  # fmt: skip
    assert collected["n_tokens"] == 2000 and collected["shards"] == 3 and collected["d_in"] == 32
    trained = _json(["sae", "train", "--acts", str(acts), "--arch", "topk", "--k", "4", "--expansion", "2",
                     "--tokens", "8000", "--batch-size", "500", "--out", str(out)])  # fmt: skip
    assert trained["d_sae"] == 64 and trained["steps"] == 16 and 0 < float(trained["final_l0"]) <= 4  # type: ignore[arg-type]  # a JSON value: float() of an untyped object
    assert S.load_sae(out).cfg.hook_name == HOOK
    evaluated = _json(["sae", "eval", *model, "--sae", str(out), "--contexts", "4"])
    assert 0 < float(evaluated["l0"]) <= 4 and "ce_loss_recovered_mean_ablation" in evaluated  # type: ignore[arg-type]  # a JSON value: float() of an untyped object
    assert evaluated["frequency_source"] == "evaluation tokens"
    # dead latents counted over the whole store (2,000 activations) instead of the held-out tokens
    over_store = _json(["sae", "eval", *model, "--sae", str(out), "--contexts", "4", "--acts", str(acts)])
    expected = S.store_frequencies(S.load_sae(out), S.ActivationStore(acts))
    assert over_store["frequency_tokens"] == 2000 and over_store["frequency_source"] == str(acts)
    assert over_store["dead_fraction"] == pytest.approx(expected.dead_fraction)
    assert over_store["ce_sae"] == pytest.approx(evaluated["ce_sae"])
    dash = _json(["sae", "dashboard", *model, "--sae", str(out), "--features", "0-5", "--contexts", "8",
                  "--out", str(page)])  # fmt: skip
    assert dash["features"] == [0, 1, 2, 3, 4, 5] and page.is_file()
    browser = open_in_chromium(page)
    assert browser.console_errors == []
    assert 'id="fsearch"' in browser.dom and "Feature 5" in browser.dom


def test_cli_errors_are_clear_json(tiny_folder: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["sae", "train", "--acts", str(tmp_path), "--out", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"] == "ActivationStoreError"
    result = runner.invoke(app, ["sae", "train", "--acts", str(tmp_path), "--out", str(tmp_path), "--arch", "gated",
                                 "--json"])  # fmt: skip
    assert json.loads(result.stdout)["error"] == "UnknownArchitectureError"
    result = runner.invoke(app, ["sae", "collect", "--model", str(tiny_folder), "--hook", "blocks.7.hook_resid_post",
                                 "--out", str(tmp_path / "a"), "--json"])  # fmt: skip
    assert result.exit_code == 1 and json.loads(result.stdout)["error"] == "HookNameError"


def test_dashboard_data_shows_the_top_activations(tiny_model: cs.HookedModel, tmp_path: Path) -> None:
    tokens = S.build_contexts(tiny_model, S.Corpus("sonnet", [TEXT]), 24, seed=0).tokens[:6]
    sae = S.create_sae(S.SAEConfig(architecture="relu", d_in=32, d_sae=16, hook_name=HOOK))
    sae.initialize(torch.Generator().manual_seed(0))
    data = S.feature_dashboard_data(tiny_model, sae, tokens, [0, 3])
    with torch.no_grad():
        x = tiny_model.cache_activations(tokens, HOOK)[HOOK]
        acts = sae.encode(x)[..., [0, 3]]
    acts[:, 0] = 0  # BOS positions are left out
    for j in range(2):
        best = data.top_examples[j][0]
        assert best.activation == pytest.approx(float(acts[..., j].max()), rel=1e-5)
        assert float(data.density[j]) == pytest.approx(float((acts[..., j] > 0).float().mean()))
        assert data.top_logits[j][0][1] >= data.top_logits[j][-1][1]
    path = write_dashboard(data, tmp_path / "d.html")
    assert "Feature 3" in path.read_text()


def test_parse_features() -> None:
    assert parse_features("0-2,7", 10) == [0, 1, 2, 7]
    with pytest.raises(S.SAEConfigError):
        parse_features("5-12", 10)
    with pytest.raises(S.SAEConfigError):
        parse_features("a-b", 10)
