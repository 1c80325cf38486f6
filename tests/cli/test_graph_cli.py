"""``circuitscope graph`` on a tiny model folder: the page and the JSON beside it, --json numbers, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

import circuitscope as cs
from circuitscope.cli import graph
from circuitscope.core.fingerprint import model_fingerprint
from circuitscope.report.attribution_graph import validate_graph
from circuitscope.transcoders.io import save_transcoders
from circuitscope.transcoders.modules import TranscoderConfig, TranscoderSet
from tests.tiny_models import TinyModels

runner = CliRunner()
app = typer.Typer()  # only the graph command (the app is then that command: no command name in the arguments)
graph.register(app)


@pytest.fixture(scope="module")
def folders(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tiny.text_folder(layers=2)
    model = cs.load_model(folder)
    d = model.cfg.d_model
    cfg = TranscoderConfig(
        "per_layer", "relu", d, 32, d, (0, 1), model_name="tiny", model_fingerprint=model_fingerprint(model)
    )
    tc = TranscoderSet(cfg)
    tc.initialize(torch.Generator().manual_seed(0))
    with torch.no_grad():
        tc.b_enc.fill_(0.05)
    out = tmp_path_factory.mktemp("tc") / "transcoders"
    save_transcoders(tc, out)
    return folder, out


def _run(folders: tuple[Path, Path], out: Path, *extra: str) -> tuple[int, dict]:
    folder, tc = folders
    args = ["--model", str(folder), "--transcoders", str(tc), "--prompt", "the cat sat", "--out", str(out), "--json"]
    result = runner.invoke(app, [*args, *extra])
    return result.exit_code, json.loads(result.stdout)


def test_graph_writes_the_page_and_the_json(folders: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "g.html"
    code, payload = _run(
        folders, out, "--max-logits", "3", "--batch-size", "8", "--node-threshold", "0.9", "--validate", "2"
    )
    assert code == 0, payload
    assert payload["html"] == str(out) and payload["json"] == str(tmp_path / "g.json")
    document = json.loads((tmp_path / "g.json").read_text())
    validate_graph(document)
    assert document["metadata"]["node_threshold"] == 0.9
    assert len(payload["logits"]) == 3 and payload["tokens"][:1] == ["<bos>"]
    n_tokens = len(payload["tokens"])
    assert payload["nodes"] == payload["features"] + 3 * n_tokens + 3  # features, errors, embeddings, logits
    assert payload["nodes_kept"] <= payload["nodes"] and payload["edges_kept"] == len(document["links"])
    assert payload["backward_batches"] == -(-(payload["features"] + 3) // 8)
    assert 0 < payload["replacement_score"] <= 1
    assert len(payload["validation"]) == 2
    assert all(c["replacement"] == pytest.approx(c["predicted"], rel=1e-4, abs=1e-6) for c in payload["validation"])
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") or "<html" in page[:200]
    assert any("top_logits" in n for n in document["nodes"] if n["feature_type"] == "cross layer transcoder")
    folder, tc = folders
    again = tmp_path / "people.html"
    args = ["--model", str(folder), "--transcoders", str(tc), "--prompt", "the cat sat", "--out", str(again),
            "--validate", "1"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and f"wrote {again}" in result.stdout and "replacement score" in result.stdout
    assert "predicted" in result.stdout and "real model" in result.stdout


def test_bad_input_is_refused_before_the_work(folders: tuple[Path, Path], tmp_path: Path, tiny: TinyModels) -> None:
    out = tmp_path / "g.html"
    code, payload = _run(folders, out, "--target", "cat sat")
    assert code == 1 and payload["error"] == "TokenizationError" and "not a single token" in payload["message"]
    code, payload = _run(folders, out, "--memory-gb", "0.0002")
    assert code == 1 and payload["error"] == "GraphBudgetError" and "tokens fit" in payload["message"]
    other = (tiny.text_folder(layers=3), folders[1])
    code, payload = _run(other, out, "--json")
    assert code == 1 and payload["error"] == "TranscoderModelError"
    assert not out.exists() and not (tmp_path / "g.json").exists()


def test_contexts_and_the_feature_cap(folders: tuple[Path, Path], tmp_path: Path) -> None:
    """``--contexts N``: each kept feature's top activating contexts among N of the default corpus, the library's
    (graphs/contexts.py, tested there) in the graph JSON; ``--max-feature-nodes``: that many feature nodes."""
    from circuitscope.graphs import feature_top_contexts
    from circuitscope.sae import default_corpus
    from circuitscope.transcoders.io import load_transcoders

    out = tmp_path / "g.html"
    code, payload = _run(folders, out, "--contexts", "4", "--max-feature-nodes", "6", "--node-threshold", "1")
    assert code == 0, payload
    assert payload["features"] == 6 < payload["active_features"]
    document = json.loads((tmp_path / "g.json").read_text())
    kept = [n for n in document["nodes"] if n["feature_type"] == "cross layer transcoder"]
    assert kept
    model = cs.load_model(folders[0])
    features = {(int(n["layer"]), int(n["feature"])) for n in kept}
    tc = load_transcoders(folders[1], model)
    expected = feature_top_contexts(model, tc, features, default_corpus(), n_contexts=4)
    assert any(expected.values())  # some kept feature fires in the corpus
    for node in kept:
        assert node.get("top_contexts", []) == expected[int(node["layer"]), int(node["feature"])]
        peaks = [max(c["activations"]) for c in node.get("top_contexts", [])]
        assert peaks == sorted(peaks, reverse=True) and all(p > 0 for p in peaks)
