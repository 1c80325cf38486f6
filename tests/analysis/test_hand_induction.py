"""The hand-built induction model: it predicts repeats, and every detector finds its planted heads."""

from __future__ import annotations

import pytest
import torch

from circuitscope.analysis._heads import duplicate_token_scores, induction_scores, previous_token_scores
from circuitscope.analysis.composition import composition_scores
from circuitscope.analysis.copying import copying_scores
from circuitscope.tasks.task import TaskError
from tests.hand_models import induction_model, induction_task, repeated_tokens, second_half_accuracy


@pytest.fixture(scope="module")
def hand():
    return induction_model()


def test_second_half_is_predicted(hand) -> None:
    model, _ = hand
    tokens, _ = repeated_tokens(model.cfg.d_vocab, 20, 8, seed=3)
    assert tokens.shape == (8, 41)
    assert torch.equal(tokens[:, 1:21], tokens[:, 21:])
    with torch.no_grad():
        logits = model(tokens)
    assert second_half_accuracy(logits, tokens, 20) == 1.0
    # the first half cannot be predicted: the next token is random and never seen before
    first = logits[:, 1:20].argmax(-1)
    assert float((first == tokens[:, 2:21]).float().mean()) < 0.2


def test_detectors_rank_the_planted_heads_first(hand) -> None:
    model, info = hand
    induction = induction_scores(model)
    previous = previous_token_scores(model)
    top_ind = induction.top(2)
    assert top_ind[0][:2] == info.induction_head
    assert top_ind[0][2] > 0.95
    assert top_ind[1][2] < 0.2
    top_prev = previous.top(2)
    assert top_prev[0][:2] == info.prev_head
    assert top_prev[0][2] == pytest.approx(1.0, abs=1e-4)
    assert top_prev[1][2] < 0.2
    # no head of this model looks at earlier copies of the current token itself
    assert float(duplicate_token_scores(model).scores.max()) < 0.2


def test_k_composition_of_the_planted_pair_is_the_highest(hand) -> None:
    model, info = hand
    comp = composition_scores(model)
    la, ha, lb, hb, score = comp.top("k", 1)[0]
    assert ((la, ha), (lb, hb)) == (info.prev_head, info.induction_head)
    # OV_prev maps TOK -> PREV and QK_ind^T maps PREV -> TOK, both one-hot on d_vocab dims: 1/sqrt(d_vocab)
    assert score == pytest.approx(1 / model.cfg.d_vocab**0.5, rel=1e-3)
    assert score > 1.5 * comp.baseline["k"]
    # the planted pair does not Q- or V-compose (TOK and PREV are orthogonal)
    assert float(comp.q[0, info.prev_head[1], 1, info.induction_head[1]]) < 1e-3
    assert float(comp.v[0, info.prev_head[1], 1, info.induction_head[1]]) < 1e-3


def test_copying_finds_the_induction_head(hand) -> None:
    model, info = hand
    copying = copying_scores(model)
    assert copying.top(1)[0][:2] == info.induction_head
    assert copying.top(1)[0][2] == 1.0


def test_induction_task(hand) -> None:
    model, info = hand
    task = induction_task(model, n=6, seq_len=10, seed=1)
    assert task.clean_tokens.shape == task.corrupted_tokens.shape == (6, 20)
    assert bool((task.clean_tokens[:, 0] == info.bos).all())
    # the clean second half repeats the first half; the corrupted first half shares no token with it
    assert torch.equal(task.clean_tokens[:, 11:], task.clean_tokens[:, 1:10])
    assert torch.equal(task.corrupted_tokens[:, 11:], task.clean_tokens[:, 11:])
    for c, k in zip(task.clean_tokens[:, 1:11], task.corrupted_tokens[:, 1:11], strict=True):
        assert not set(c.tolist()) & set(k.tolist())
    assert torch.equal(task.correct, task.clean_tokens[:, 10])
    rows = torch.arange(6)
    with torch.no_grad():
        clean = model(task.clean_tokens)[rows, task.answer_pos]
        corrupted = model(task.corrupted_tokens)[rows, task.answer_pos]
    assert torch.equal(clean.argmax(-1), task.correct)
    clean_diff = clean[rows, task.correct] - clean[rows, task.incorrect]
    corrupted_diff = corrupted[rows, task.correct] - corrupted[rows, task.incorrect]
    assert float(clean_diff.min()) > 9.0  # ~logit_scale: the induction head attends only to the answer
    assert float(corrupted_diff.abs().max()) < 1.0
    # same seed, same task
    again = induction_task(model, n=6, seq_len=10, seed=1)
    assert torch.equal(again.clean_tokens, task.clean_tokens)
    with pytest.raises(ValueError, match="seq_len"):
        induction_task(model, n=2, seq_len=40)
    assert issubclass(TaskError, ValueError)
