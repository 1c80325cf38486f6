"""Steering vectors on a tiny text model: exact additions and projections, files, sweeps, function vectors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import circuitscope as cs
from circuitscope.probes.activations import activations_at_position
from circuitscope.steering import (
    ICL_TASKS,
    SteeringVector,
    SteeringVectorMismatchError,
    actadd_vector,
    caa_vector,
    function_vector,
    load_vector,
    pca_vector,
    save_vector,
    steering_hooks,
    steering_sweep,
    target_logprob,
)
from tests.tiny_models import TinyModels

HOOK = "blocks.1.hook_resid_pre"
TEXT = "the cat sat on the mat"


@pytest.fixture(scope="module")
def vec(text_model: cs.HookedModel) -> SteeringVector:
    return actadd_vector(text_model, "love", "hate", HOOK)


def _greedy_by_full_forwards(text_model: cs.HookedModel, prompt: str, n: int, v: SteeringVector) -> list[int]:
    """Greedy generation the slow way: a full steered forward pass over the whole text for each new token."""
    tokens = text_model.to_tokens(prompt)
    for _ in range(n):
        logits = text_model.run_with_hooks(tokens, steering_hooks(v, text_model))
        tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], 1)
    return tokens[0].tolist()


def _resid(text_model: cs.HookedModel, hooks: list) -> torch.Tensor:
    _, cache = text_model.run_with_cache(TEXT, names=HOOK, fwd_hooks=hooks)
    return cache[HOOK][0]


@torch.no_grad()
@pytest.mark.parametrize("mode", ["add", "project"])
def test_coefficient_zero_changes_nothing(text_model: cs.HookedModel, vec: SteeringVector, mode: str) -> None:
    plain = text_model(TEXT)
    steered = text_model.run_with_hooks(TEXT, steering_hooks(vec.with_(coefficient=0.0, mode=mode), text_model))
    assert torch.equal(plain, steered)
    assert text_model.active_hooks() == []


@torch.no_grad()
def test_addition_is_exact_from_start_pos(text_model: cs.HookedModel, vec: SteeringVector) -> None:
    before = _resid(text_model, [])
    after = _resid(text_model, steering_hooks(vec.with_(coefficient=3.0, start_pos=4, end_pos=None), text_model))
    torch.testing.assert_close(after[:4], before[:4], rtol=0, atol=0)
    torch.testing.assert_close(after[4:], before[4:] + 3.0 * vec.vector, rtol=0, atol=0)  # the hook's own two ops


@torch.no_grad()
def test_projection_leaves_no_component(text_model: cs.HookedModel, vec: SteeringVector) -> None:
    before = _resid(text_model, [])
    after = _resid(text_model, steering_hooks(vec.with_(mode="project", start_pos=2, end_pos=None), text_model))
    u = vec.unit
    assert float((before[2:] @ u).abs().min()) > 1e-3  # there was a component to remove
    # x - (x . u) u leaves float32 rounding of |x| ~0.3 along u (measured 1.5e-8)
    torch.testing.assert_close(after[2:] @ u, torch.zeros(after.shape[0] - 2), rtol=0, atol=1e-5)
    torch.testing.assert_close(after[:2], before[:2], rtol=0, atol=0)
    # what is orthogonal to the direction is untouched, up to float32 rounding of the projection (default tolerances)
    torch.testing.assert_close(after[2:] - (after[2:] @ u)[:, None] * u, before[2:] - (before[2:] @ u)[:, None] * u)


@torch.no_grad()
def test_generation_steers_each_new_position_like_a_full_forward(
    text_model: cs.HookedModel, vec: SteeringVector
) -> None:
    """Cached generation (one position per step) must steer the same positions as full forward passes."""
    v = vec.with_(coefficient=6.0, start_pos=3, end_pos=None)
    got = text_model.generate("abc", max_new_tokens=6, hooks=steering_hooks(v, text_model))
    assert got.tokens.tolist() == _greedy_by_full_forwards(text_model, "abc", 6, v)
    plain = text_model.generate("abc", max_new_tokens=6)
    assert plain.tokens.tolist() != got.tokens.tolist()  # the coefficient is large enough to matter


@torch.no_grad()
def test_a_position_window_steers_only_inside_it(text_model: cs.HookedModel, vec: SteeringVector) -> None:
    before = _resid(text_model, [])
    after = _resid(text_model, steering_hooks(vec.with_(coefficient=2.0, start_pos=1, end_pos=3), text_model))
    torch.testing.assert_close(after[1:3], before[1:3] + 2.0 * vec.vector, rtol=0, atol=0)  # the hook's own ops
    rest = [0, *range(3, after.shape[0])]
    torch.testing.assert_close(after[rest], before[rest], rtol=0, atol=0)  # outside the window: untouched
    assert (vec.start_pos, vec.end_pos) == (1, 2)  # ActAdd injects at the front of the prompt
    # during cached generation, positions past the window are left alone: same tokens as full forwards
    v = vec.with_(coefficient=6.0, start_pos=2, end_pos=4)
    got = text_model.generate("ab", max_new_tokens=4, hooks=steering_hooks(v, text_model))
    assert got.tokens.tolist() == _greedy_by_full_forwards(text_model, "ab", 4, v)


def test_actadd_is_the_activation_difference(text_model: cs.HookedModel, vec: SteeringVector) -> None:
    acts = activations_at_position(text_model, ["love", "hate"], HOOK, -1)[HOOK]
    torch.testing.assert_close(vec.vector, acts[0] - acts[1], atol=0, rtol=0)  # the same subtraction
    assert vec.method == "actadd" and vec.details["positive"] == "love"


def test_caa_is_the_mean_difference_and_pca_finds_the_shared_axis(text_model: cs.HookedModel) -> None:
    pairs = [("good day", "bad day"), ("good cat", "bad cat"), ("good one", "bad one")]
    caa = caa_vector(text_model, pairs, HOOK)
    pos = activations_at_position(text_model, [p for p, _ in pairs], HOOK)[HOOK]
    neg = activations_at_position(text_model, [n for _, n in pairs], HOOK)[HOOK]
    torch.testing.assert_close(caa.vector, (pos - neg).mean(0), atol=0, rtol=0)  # the same mean of differences
    pca = pca_vector(text_model, pairs, HOOK)
    diffs = pos - neg
    assert float(torch.nn.functional.cosine_similarity(pca.vector, diffs.mean(0), dim=0)) > 0.5
    assert (diffs @ pca.unit).mean() > 0
    assert 0 < pca.details["explained_variance"] <= 1


def test_saved_vector_loads_identical_and_is_refused_elsewhere(
    tiny: TinyModels, text_model: cs.HookedModel, vec: SteeringVector, tmp_path: Path
) -> None:
    v = vec.with_(coefficient=2.5, mode="project", start_pos=1)
    path = save_vector(v, tmp_path / "love.safetensors")
    back = load_vector(path, model=text_model)
    assert torch.equal(back.vector, v.vector)
    assert (
        back.hook,
        back.coefficient,
        back.mode,
        back.start_pos,
        back.end_pos,
        back.method,
        back.model,
        back.details,
    ) == (
        v.hook,
        v.coefficient,
        v.mode,
        v.start_pos,
        v.end_pos,
        v.method,
        v.model,
        v.details,
    )
    other = tiny.text(seed=1)
    with pytest.raises(SteeringVectorMismatchError, match="built on model"):
        load_vector(path, model=other)
    with pytest.raises(SteeringVectorMismatchError, match="for hook"):
        load_vector(path, hook="blocks.0.hook_resid_pre")
    assert not list(tmp_path.glob(".*.tmp"))


def test_wrong_dimension_is_a_clear_error(text_model: cs.HookedModel) -> None:
    bad = SteeringVector(torch.ones(7), HOOK)
    with pytest.raises(SteeringVectorMismatchError, match="dimension 7"):
        steering_hooks(bad, text_model)
    with pytest.raises(cs.ShapeError, match="dimension 7"):
        text_model.run_with_hooks(TEXT, steering_hooks(bad))  # unchecked: refused when it meets the activation
    assert text_model.active_hooks() == []
    with pytest.raises(SteeringVectorMismatchError, match="does not have"):
        steering_hooks(SteeringVector(torch.ones(32), "blocks.9.hook_resid_pre"), text_model)


def test_sweep_zero_coefficient_column_is_the_baseline(text_model: cs.HookedModel) -> None:
    sweep = steering_sweep(
        text_model,
        lambda layer: actadd_vector(text_model, "yes", "no", f"blocks.{layer}.hook_resid_pre"),
        layers=[0, 1],
        coefficients=[0.0, 8.0],
        effect=target_logprob(["i feel", "you are"], ["l", "h"]),
        neutral_texts=["a quiet walk by the river.", "numbers: 1 2 3 4."],
    )
    assert sweep.effect.shape == (2, 2)
    # coefficient 0 adds 0 x v: the baseline run bit for bit (test_coefficient_zero_changes_nothing)
    torch.testing.assert_close(sweep.damage[:, 0], torch.zeros(2), rtol=0, atol=0)
    torch.testing.assert_close(sweep.effect_change[:, 0], torch.zeros(2), rtol=0, atol=0)
    assert bool((sweep.damage[:, 1].abs() > 1e-4).all())
    assert sweep.hooks == ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"]


def test_function_vector_is_the_sum_of_top_head_outputs(text_model: cs.HookedModel) -> None:
    result = function_vector(text_model, ICL_TASKS["uppercase"], n_shots=2, n_prompts=3, n_eval=3, top_k=3, layer=1)
    assert result.aie.shape == (2, 4) and len(result.top_heads) == 3
    order = result.aie.flatten().argsort(descending=True)[:3]
    assert result.top_heads == [divmod(int(i), 4) for i in order]
    assert result.vector.hook == "blocks.1.hook_resid_pre" and result.vector.d == 32
    for acc in (result.icl_accuracy, result.zero_shot_accuracy, result.zero_shot_fv_accuracy):
        assert 0.0 <= acc <= 1.0
    assert text_model.active_hooks() == []
