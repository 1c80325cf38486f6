"""The task library on the embedded Gemma-3-270M's tokenizer: every task builds; Gemma does IOI."""

from __future__ import annotations

import pytest

import circuitscope as cs
from circuitscope.tasks import TASK_NAMES, corruption_span, make_task, task_accuracy

pytestmark = pytest.mark.real


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_task_builds_on_gemmas_tokenizer(gemma: cs.HookedModel, name: str) -> None:
    task = make_task(gemma, name, n_prompts=32, seed=0)  # type: ignore[arg-type]
    assert len(task) == 32
    for i in range(len(task)):
        clean, corrupted = task.clean_prompts[i], task.corrupted_prompts[i]
        assert len(gemma.tok.encode(clean)) == len(gemma.tok.encode(corrupted)) == int(task.answer_pos[i]) + 1
        for token in (int(task.correct[i]), int(task.incorrect[i])):
            assert gemma.to_single_token(str(gemma.to_string(token))) == token
        assert int(task.correct[i]) != int(task.incorrect[i])
        assert corruption_span(task, i).corrupted == corrupted


def test_gemma_does_ioi(gemma: cs.HookedModel) -> None:
    check = task_accuracy(gemma, make_task(gemma, "ioi", n_prompts=32, seed=0))
    assert check.accuracy >= 0.8 and check.logit_diff > 0 and not check.near_chance
