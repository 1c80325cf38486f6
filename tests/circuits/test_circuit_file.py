"""Circuit files: round trip, versions, models, malformed input; the SVG view and the HTML report."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import pytest
import torch

from circuitscope import HookedModel
from circuitscope.circuits import Circuit, CircuitError, discover_circuit
from circuitscope.circuits.circuit import VERSION
from circuitscope.report.circuit import circuit_report, circuit_svg
from circuitscope.tasks import Task
from tests.browser import open_in_chromium
from tests.tiny_models import VOCAB, TinyModels


@pytest.fixture(scope="module")
def found(tiny: TinyModels) -> tuple[HookedModel, object]:
    model = tiny.hooked("llama_gqa")
    g = torch.Generator().manual_seed(2)
    clean = torch.randint(1, VOCAB, (4, 6), generator=g)
    corrupted = clean.clone()
    corrupted[:, 1] = torch.randint(1, VOCAB, (4,), generator=g)
    task = Task("tiny", ["c"] * 4, ["x"] * 4, clean, corrupted, torch.full((4,), 5), torch.tensor([1, 2, 3, 4]),
                torch.tensor([5, 6, 7, 8]))  # fmt: skip
    return model, discover_circuit(model, task, "eap", n_edges=12, model_name="tiny-llama")


def test_round_trip(found, tmp_path: Path) -> None:
    model, discovery = found
    circuit: Circuit = discovery.circuit
    path = circuit.save(tmp_path / "sub" / "c.json")
    assert oct(path.stat().st_mode)[-3:] == "644" and not list(path.parent.glob(".*tmp"))
    loaded = Circuit.load(path, model=model)
    assert torch.equal(loaded.edges, circuit.edges)
    torch.testing.assert_close(loaded.scores, circuit.scores, equal_nan=True, atol=0, rtol=0)  # float32 -> JSON: exact
    assert loaded.n_edges == 12 and loaded.method == "eap" and loaded.model_name == "tiny-llama"
    assert loaded.nodes == circuit.nodes and loaded.edge_list() == circuit.edge_list()
    data = json.loads(path.read_text())
    assert data["format"] == "circuitscope.circuit" and data["version"] == VERSION
    assert len(data["edges"]) == 12 and len(data["scores"]) == circuit.graph.n_edges
    assert abs(data["edges"][0]["score"]) >= abs(data["edges"][-1]["score"])
    assert data["info"]["faithfulness"]["n_edges"] == 12


def test_bad_files(tiny: TinyModels, found, tmp_path: Path) -> None:
    _, discovery = found
    data = discovery.circuit.to_dict()
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**data, "version": VERSION + 1}))
    with pytest.raises(CircuitError, match="newer than this circuitscope"):
        Circuit.load(newer)
    other = tiny.hooked("gpt2")
    good = discovery.circuit.save(tmp_path / "good.json")
    with pytest.raises(CircuitError, match="this circuit is for 'tiny-llama'"):
        Circuit.load(good, model=other)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**data, "edges": [{"sender": "a9.h0", "receiver": "logits"}]}))
    with pytest.raises(CircuitError, match=r"no sender named 'a9\.h0'"):
        Circuit.load(broken)
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(CircuitError, match="not JSON"):
        Circuit.load(tmp_path / "x.json")
    (tmp_path / "y.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(CircuitError, match="not a circuitscope circuit"):
        Circuit.load(tmp_path / "y.json")
    with pytest.raises(CircuitError, match="no circuit file"):
        Circuit.load(tmp_path / "missing.json")


def test_view_and_report(found, tmp_path: Path) -> None:
    _, discovery = found
    circuit: Circuit = discovery.circuit
    svg = circuit_svg(circuit)
    assert svg.startswith("<svg") and svg.count("<path") == circuit.n_edges
    for s, r, v in circuit.edge_list():
        assert html.escape(f"{s} -> {r}: {v:+.4g}") in svg
    path = circuit_report(circuit, discovery.curve).write(tmp_path / "c.html")
    result = open_in_chromium(path)
    assert result.console_errors == []
    assert "Strongest edges" in result.dom and "<svg" in result.dom
    assert not math.isnan(circuit.info["faithfulness"]["normalized"])
