"""Real-model tier: circuit discovery on Gemma-3-270M with IOI prompts, and the `circuit` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import circuitscope as cs
from circuitscope.analysis.attribution import answer_logits
from circuitscope.circuits import CircuitRunner, eap
from circuitscope.cli.main import app
from circuitscope.tasks import IOIConfig, evaluate_metric, ioi_task
from tests.browser import open_in_chromium

pytestmark = pytest.mark.real


def test_edge_interventions_are_exact_on_gemma(gemma: cs.HookedModel) -> None:
    task = ioi_task(gemma, IOIConfig(n_prompts=4, seed=3))
    runner = CircuitRunner(gemma, task, batch_size=4)
    with torch.no_grad():
        logits, _ = answer_logits(gemma, task.corrupted_tokens, task.answer_pos)
    corrupted = float(evaluate_metric("logit_diff", logits, task.correct, task.incorrect).mean())
    assert runner.run(runner.graph.allowed) == runner.full  # every edge kept adds 0 x (ablated - clean): exact
    # no edge kept: every receiver's input is rebuilt from sender outputs, re-adding residuals up to 6.6e4
    # (1 ulp there is 4e-3, shrunk by the final norm; measured 9.5e-7 on a logit difference ~1)
    assert runner.ablated == pytest.approx(corrupted, abs=2e-3)
    assert runner.full > 2 and runner.full > runner.ablated + 2


def test_eap_finds_the_name_mover_on_gemma(gemma: cs.HookedModel) -> None:
    """L11H3, the head the IOI report's patching and DLA single out, writes the logits: EAP's strongest edge."""
    task = ioi_task(gemma, IOIConfig(n_prompts=8, seed=0))
    scores = eap(gemma, task, batch_size=8)
    assert scores.graph.n_edges == 5644
    edge, score = scores.ranked()[0]
    assert edge == "a11.h3->logits" and score < -1


def test_circuit_cli_on_gemma(tmp_path: Path) -> None:
    out, html = tmp_path / "c.json", tmp_path / "c.html"
    result = CliRunner().invoke(
        app,
        ["circuit", "--model", "gemma-3-270m", "--task", "ioi", "--n-prompts", "6", "--method", "eap",
         "--edges", "300", "--no-curve", "--out", str(out), "--html", str(html), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["n_edges"] == 300 and payload["n_edges_total"] == 5644
    assert payload["edges"][0]["sender"] == "a11.h3" and payload["edges"][0]["receiver"] == "logits"
    assert payload["seconds"]["one_forward_pass"] > 0
    assert open_in_chromium(html).console_errors == []
    again = CliRunner().invoke(app, ["circuit-eval", str(out), "--model", "gemma-3-270m", "--n-prompts", "6", "--json"])
    assert again.exit_code == 0, again.output
    evaluated = json.loads(again.stdout)
    # a fresh runner on the reloaded circuit, its own batches: float32 rounding only (exact here)
    assert evaluated["normalized"] == pytest.approx(payload["faithfulness"]["normalized"], abs=1e-4)
    bad = CliRunner().invoke(app, ["circuit", "--model", "gemma-3-270m", "--method", "magic", "--out",
                                   str(tmp_path / "x.json"), "--json"])  # fmt: skip
    assert bad.exit_code == 1 and "unknown circuit discovery method 'magic'" in json.loads(bad.stdout)["message"]
