"""The typed per-framing scores: equal to the JSON table, intervals around their means, progress per item."""

from __future__ import annotations

from circuitscope.evals import EvalItem, Framing, FramingScore, evaluate_prompt_variants
from tests.tiny_models import TinyModels

ITEMS = [
    EvalItem("is 2 > 1", ["yes", "no"], "yes"),
    EvalItem("is 1 > 2", ["yes", "no", "maybe"], "no"),
    EvalItem("a or b", ["a", "bb"], "bb"),
]


def test_scores_are_the_table_typed_and_progress_counts_every_item(tiny: TinyModels) -> None:
    framings = [Framing("plain", "q: {question} a:"), Framing("bang", "! {question}")]
    calls: list[tuple[str, int, int]] = []
    result = evaluate_prompt_variants(
        tiny.text(), ITEMS, framings, n_boot=200, on_progress=lambda *call: calls.append(call)
    )
    assert calls == [("scoring", done, 6) for done in range(7)]
    scores = result.scores()
    assert all(isinstance(s, FramingScore) for s in scores)
    assert [s.to_json() for s in scores] == result.table()
    for s, name, f in zip(scores, ["plain", "bang"], range(2), strict=True):
        assert s.framing == name
        assert s.accuracy == float(result.correct[f].mean())
        assert s.p_answer_ci95[0] <= s.p_answer <= s.p_answer_ci95[1]
        assert s.effect_p_answer_vs_baseline == float((result.p_answer[f] - result.p_answer[0]).mean())
    assert scores[0].effect_ci95 == (0.0, 0.0)
