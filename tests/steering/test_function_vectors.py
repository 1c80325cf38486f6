"""Function vectors on a tiny text model: per-head vectors, rebuilt top-k vectors, the zero-shot evaluation."""

from __future__ import annotations

import pytest
import torch

import circuitscope as cs
from circuitscope.steering import ICL_TASKS, FunctionVectorResult, function_vector, steering_hooks
from circuitscope.steering.function_vectors import zero_shot_accuracy
from tests.tiny_models import TinyModels


@pytest.fixture(scope="module")
def model(tiny: TinyModels) -> cs.HookedModel:
    return tiny.text()


@pytest.fixture(scope="module")
def result(model: cs.HookedModel) -> FunctionVectorResult:
    return function_vector(model, ICL_TASKS["antonym"], n_shots=2, n_prompts=3, n_eval=4, top_k=3, layer=1)


def test_head_vectors_are_mean_z_times_w_o(model: cs.HookedModel, result: FunctionVectorResult) -> None:
    cfg = model.cfg
    assert result.head_vectors.shape == (cfg.n_layers, cfg.n_heads, cfg.d_model)
    # the function vector is exactly the sum of its top heads' rows
    expected = sum((result.head_vectors[li, h] for li, h in result.top_heads), torch.zeros(cfg.d_model))
    torch.testing.assert_close(result.vector.vector, expected)  # torch's reduction order vs left to right: 1 ulp
    rebuilt = result.vector_for(3, 1)
    assert rebuilt.hook == result.vector.hook
    torch.testing.assert_close(rebuilt.vector, result.vector.vector, atol=0, rtol=0)  # the same sum again
    assert rebuilt.details["top_heads"] == [list(t) for t in result.top_heads]
    other = result.vector_for(1, 0)
    assert other.hook == "blocks.0.hook_resid_pre"
    torch.testing.assert_close(other.vector, result.head_vectors[result.top_heads[0]], atol=0, rtol=0)  # one term


def test_zero_shot_accuracy_matches_a_hand_loop(model: cs.HookedModel, result: FunctionVectorResult) -> None:
    queries, answers = result.eval_queries, result.eval_answers
    assert len(queries) == len(answers) == 4 and all(q.startswith("Q: ") and q.endswith("\nA:") for q in queries)
    assert zero_shot_accuracy(model, None, queries, answers) == result.zero_shot_accuracy
    assert zero_shot_accuracy(model, result.vector, queries, answers) == result.zero_shot_fv_accuracy
    hits = 0
    for q, a in zip(queries, answers, strict=True):
        tokens = model.to_tokens(q)
        steer = result.vector.with_(start_pos=tokens.shape[1] - 1)
        with torch.no_grad():
            logits = model.run_with_hooks(tokens, steering_hooks(steer, model))
        hits += int(int(logits[0, -1].argmax()) == a)
    assert hits / len(queries) == result.zero_shot_fv_accuracy
    assert model.active_hooks() == []


def test_vector_for_carries_its_coefficient(result: FunctionVectorResult) -> None:
    v = result.vector_for(2, 1, coefficient=10.0)
    assert v.coefficient == 10.0 and v.mode == "add"
    torch.testing.assert_close(v.vector, result.vector_for(2, 1).vector, atol=0, rtol=0)  # the same sum
