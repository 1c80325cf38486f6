"""Real-model tier: head detectors and ``circuitscope heads`` on Gemma-3-270M."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import circuitscope as cs
from circuitscope.analysis._heads import many_detector_scores, repeated_tokens_for_model
from circuitscope.analysis.copying import CopyingConfig, ov_copying
from circuitscope.cli.main import app

pytestmark = pytest.mark.real


def test_attention_detectors_find_induction_and_previous_token_heads(gemma: cs.HookedModel) -> None:
    tokens = repeated_tokens_for_model(gemma, 32, 6, seed=0)
    assert tokens.shape == (6, 65) and int(tokens[0, 0]) == gemma.tok.bos_token_id
    scores = many_detector_scores(gemma, tokens, batch_size=6)
    for result in scores.values():
        assert result.scores.shape == (18, 4)
        assert float(result.scores.min()) >= 0.0 and float(result.scores.max()) <= 1.0
    induction = scores["induction"].scores
    # observed: L5H1 ~0.86, then L11H2 ~0.62; a head attending uniformly scores about 1/(position) < 0.05
    assert float(induction.max()) > 0.6
    assert float(induction.median()) < 0.1
    assert scores["induction"].top(1)[0][:2] == (5, 1)
    previous = scores["previous_token"].scores
    assert float(previous.max()) > 0.5  # observed: L2H3 ~0.69
    # the induction head is not a previous-token head, and vice versa
    layer, head, _ = scores["induction"].top(1)[0]
    assert float(previous[layer, head]) < 0.2
    layer, head, _ = scores["previous_token"].top(1)[0]
    assert float(induction[layer, head]) < 0.2


def test_ov_copying_and_suppression_heads(gemma: cs.HookedModel) -> None:
    copying, suppression = ov_copying(gemma, CopyingConfig(n_tokens=500))
    assert copying.n_candidates == 500 and copying.baseline == pytest.approx(0.01)
    for result in (copying, suppression):
        assert result.scores.shape == (18, 4)
        assert float(result.scores.min()) >= 0.0 and float(result.scores.max()) <= 1.0
        assert float(result.scores.max()) > 0.5  # observed ~0.9 (L7H0 copies, L7H1 suppresses), baseline 0.01
    # a head cannot both copy and suppress most tokens
    assert float((copying.scores + suppression.scores).max()) <= 1.0 + 1e-6
    assert copying.top(1)[0][:2] != suppression.top(1)[0][:2]


def test_cli_json_on_gemma() -> None:
    result = CliRunner().invoke(
        app, ["heads", "--json", "--no-composition", "--seq-len", "16", "--batch", "4", "--n-tokens", "300"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["model"] == cs.DEFAULT_MODEL
    for name in ("previous_token", "duplicate_token", "induction", "copying", "copy_suppression"):
        assert len(payload[name]) == 18 and all(len(row) == 4 for row in payload[name])
        assert len(payload["top"][name]) == 5
    assert payload["top"]["induction"][0]["score"] > 0.5
