"""The prompt and attention views equal the library calls they wrap, and refuse bad requests before any work."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import torch

import circuitscope as cs
from circuitscope.analysis import direct_logit_attribution, logit_lens, many_detector_scores, repeated_tokens_for_model
from circuitscope.serve.errors import ServeInputError
from circuitscope.serve.views import HeadScoresView, attention_view, head_scores, prompt_view
from circuitscope.serve.views._json import round_sig
from circuitscope.serve.views.prompt import prompt_task

PROMPT = "the cat sat on the mat"


@pytest.fixture(scope="module")
def scores(text_model: cs.HookedModel) -> HeadScoresView:
    """The detector scores, computed once for the module (as the workbench caches them)."""
    return head_scores(text_model)


@pytest.fixture(autouse=True)
def _no_leaked_hooks(text_model: cs.HookedModel) -> Iterator[None]:
    yield
    assert text_model.active_hooks() == []


def test_predictions_are_the_softmax_of_the_models_logits(text_model: cs.HookedModel) -> None:
    view = prompt_view(text_model, PROMPT, top_k=7)
    tokens = text_model.to_tokens(PROMPT)
    logits = text_model(tokens)[0, -1].float()
    probs = logits.softmax(-1)
    order = probs.argsort(descending=True)[:7].tolist()
    assert [p.id for p in view.predictions] == order
    assert [p.prob for p in view.predictions] == pytest.approx(probs[order].tolist(), abs=0)
    assert [p.logit for p in view.predictions] == pytest.approx(logits[order].tolist(), abs=0)
    assert view.token_ids == tokens[0].tolist() and view.tokens == text_model.to_str_tokens(tokens[0])
    assert view.dla is None and json.loads(json.dumps(view.to_json()))["dla"] is None


def test_logit_lens_rows_are_the_librarys(text_model: cs.HookedModel) -> None:
    view = prompt_view(text_model, PROMPT)
    tokens = text_model.to_tokens(PROMPT)
    expected = logit_lens(text_model, prompt_task(PROMPT, tokens, (5, 6)), k=5)  # the answers do not change the rows
    lens = view.to_json()["logit_lens"]
    n = text_model.cfg.n_layers
    assert lens["labels"] == ["embed", *(f"L{i}" for i in range(n))]
    assert [[[c["token"] for c in pos] for pos in row] for row in lens["top_k"]] == expected.top_tokens
    torch.testing.assert_close(
        torch.tensor([[[c["prob"] for c in pos] for pos in row] for row in lens["top_k"]]),
        expected.top_probs,
        rtol=1e-4,  # rounded to 5 significant digits
        atol=0,
    )
    assert [[pos[0] for pos in row] for row in lens["top_k"]] == lens["top"]
    # the last row is the model's own output: its top token at the last position is the top prediction
    assert lens["top"][-1][-1]["token"] == view.predictions[0].token
    assert lens["top"][-1][-1]["prob"] == pytest.approx(view.predictions[0].prob, rel=1e-4)


def test_dla_adds_up_to_the_logit_difference(text_model: cs.HookedModel) -> None:
    view = prompt_view(text_model, PROMPT, answer="a", wrong="e")
    assert view.dla is not None
    dla = view.to_json()["dla"]
    logits = text_model(text_model.to_tokens(PROMPT))[0, -1].detach()
    a, e = text_model.to_single_token("a"), text_model.to_single_token("e")
    assert dla["logit_diff"] == pytest.approx(float(logits[a] - logits[e]), abs=1e-5)
    # no softcapping in this family: the components, the head biases and the bias term add up to it
    whole = sum(dla["values"]) + sum(dla["head_bias"]) + dla["bias"]
    assert whole == pytest.approx(dla["logit_diff"], abs=1e-4)
    assert sum(dla["layers"]) + dla["embed"] + dla["bias"] == pytest.approx(dla["logit_diff"], abs=1e-4)
    expected = direct_logit_attribution(text_model, prompt_task(PROMPT, text_model.to_tokens(PROMPT), (a, e)))
    assert dla["heads"] == expected.heads.tolist() and dla["mlps"] == expected.mlp.tolist()
    n, h = text_model.cfg.n_layers, text_model.cfg.n_heads
    assert dla["labels"][:2] == ["embed", "L0H0"] and dla["labels"][-1] == f"L{n - 1} MLP"
    assert len(dla["labels"]) == len(dla["values"]) == 1 + n * (h + 1)
    assert (dla["answer"], dla["wrong"]) == ("a", "e")


def test_attention_patterns_are_the_cached_patterns(text_model: cs.HookedModel, scores: HeadScoresView) -> None:
    view = attention_view(text_model, PROMPT, scores)
    _, cache = text_model.run_with_cache(text_model.to_tokens(PROMPT))
    data = view.to_json()
    n, h = text_model.cfg.n_layers, text_model.cfg.n_heads
    assert (data["n_layers"], data["n_heads"]) == (n, h)
    for layer in range(n):
        torch.testing.assert_close(torch.tensor(data["patterns"][layer]), cache["pattern", layer][0], rtol=1e-4, atol=0)
    assert data["tokens"] == text_model.to_str_tokens(PROMPT)
    expected = many_detector_scores(text_model, repeated_tokens_for_model(text_model))
    assert set(data["scores"]) == {"previous_token", "duplicate_token", "induction"}
    for name, grid in expected.items():
        torch.testing.assert_close(torch.tensor(data["scores"][name]), grid.scores, rtol=1e-4, atol=0)


def test_round_sig_keeps_five_significant_digits() -> None:
    values = torch.tensor([[0.123456789, 12345.678, -0.000987654321], [0.0, 1.0, 3.0e-12]])
    assert round_sig(values) == [[0.12346, 12346.0, -0.00098765], [0.0, 1.0, 3.0e-12]]
    assert json.dumps(round_sig(torch.tensor([0.1 + 0.2]))) == "[0.3]"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": ""}, "the prompt is empty"),
        ({"prompt": "abc " * 40}, "context is 128"),
        ({"prompt": PROMPT, "answer": "ab", "wrong": "e"}, "'ab' is not a single token: it tokenizes to 2 tokens"),
        ({"prompt": PROMPT, "answer": "a"}, "only the answer token was given"),
        ({"prompt": PROMPT, "answer": "a", "wrong": "a"}, "are the same token"),
        ({"prompt": PROMPT, "top_k": 0}, "top_k must be a whole number of at least 1"),
    ],
)
def test_prompt_view_refuses_bad_requests(text_model: cs.HookedModel, kwargs: dict, message: str) -> None:
    with pytest.raises(ServeInputError, match=message):
        prompt_view(text_model, **kwargs)


def test_attention_view_refuses_an_empty_prompt(text_model: cs.HookedModel, scores: HeadScoresView) -> None:
    with pytest.raises(ServeInputError, match="the prompt is empty"):
        attention_view(text_model, "  ", scores)
