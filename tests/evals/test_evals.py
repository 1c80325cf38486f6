"""The prompt-variant harness: option log-probs equal a hand computation; effects and intervals are consistent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from circuitscope.evals import EvalSetError, Framing, evaluate_prompt_variants, load_eval_items
from tests.tiny_models import TinyModels


def test_scores_equal_a_hand_computation_and_effects_are_paired(tiny: TinyModels, tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    rows = [
        {"question": "is 2 > 1", "options": ["yes", "no"], "answer": "yes"},
        {"question": "is 1 > 2", "options": ["yes", "no", "maybe"], "answer": "no", "topic": "math"},
        {"question": "a or b", "options": ["a", "bb"], "answer": "bb"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    items = load_eval_items(path)
    assert items[1].meta == {"topic": "math"}
    model = tiny.text()
    framings = [Framing("plain", "q: {question} a:"), Framing("same", "q: {question} a:"), Framing("x", "! {question}")]
    res = evaluate_prompt_variants(model, items, framings, n_boot=200)
    # hand computation for one option: sum of next-token log-probs over the option's tokens
    ids = model.to_tokens("q: a or b a: bb")[0]
    n_prefix = len(model.to_tokens("q: a or b a:")[0])
    with torch.no_grad():
        logp = model(ids[None])[0].log_softmax(-1)
    expected = sum(float(logp[p, ids[p + 1]]) for p in range(n_prefix - 1, len(ids) - 1))
    assert res.option_logprobs[0][2][1] == pytest.approx(expected, abs=1e-4)
    table = res.table()
    assert table[0]["effect_p_answer_vs_baseline"] == 0.0 and table[1]["effect_ci95"] == [0.0, 0.0]
    for row in table:
        lo, hi = row["p_answer_ci95"]
        assert lo <= row["p_answer"] <= hi
    p = res.p_answer
    assert bool(((p > 0) & (p < 1)).all())
    torch.testing.assert_close(res.p_answer[0], res.p_answer[1], atol=0, rtol=0)  # the same prompts: bit for bit


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"question": "q", "options": ["a", "b"], "answer": "a"}\n{"question": "q", "options": ["a"]}\n', ":2:"),
        ('{"question": "q", "options": ["a", "b"], "answer": "c"}\n', "not one of"),
    ],
)
def test_malformed_files_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(text)
    with pytest.raises(EvalSetError, match=message):
        load_eval_items(bad)


def test_a_framing_needs_its_placeholder_once() -> None:
    with pytest.raises(EvalSetError, match="exactly once"):
        Framing("f", "no placeholder")
