"""Generation steps equal the model's own greedy generation, plain and steered, one lock per step."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import torch

import circuitscope as cs
from circuitscope.errors import ShapeError
from circuitscope.sae import SAEConfig, create_sae
from circuitscope.serve.errors import ServeInputError
from circuitscope.serve.views import actadd_view, feature_sources, feature_vector, generation_steps
from circuitscope.steering import SteeringVector
from tests.graphs.conftest import random_transcoders

PROMPT = "the cat sat"


@pytest.fixture(autouse=True)
def _no_leaked_hooks(text_model: cs.HookedModel) -> Iterator[None]:
    yield
    assert text_model.active_hooks() == []


class CountingLock:
    """A lock that counts how often it was taken and checks that no hook outlives a step."""

    def __init__(self, model: cs.HookedModel) -> None:
        self.model, self.lock, self.entered = model, threading.Lock(), 0

    def __enter__(self) -> None:
        self.lock.acquire()
        self.entered += 1

    def __exit__(self, *exc: Any) -> None:
        assert self.model.active_hooks() == []
        self.lock.release()


def _generated(model: cs.HookedModel, n: int, vector: SteeringVector | None = None) -> str:
    with torch.no_grad():
        out = model.generate(PROMPT, max_new_tokens=n, interventions=[] if vector is None else [vector])
    assert len(out.tokens) - out.prompt_length == n  # no end-of-text token cut it short
    return out.text


def test_the_steps_are_greedy_generation_without_and_with_the_vector(text_model: cs.HookedModel) -> None:
    vector = actadd_view(text_model, "cold", "warm", 1).with_(end_pos=None)  # at every position: a visible change
    lock = CountingLock(text_model)
    steps = list(generation_steps(text_model, PROMPT, vector=vector, coefficient=20.0, max_new_tokens=6, lock=lock))
    assert [s.step for s in steps] == list(range(6)) and lock.entered == 6
    assert steps[-1].texts[0] == _generated(text_model, 6)
    assert steps[-1].texts[1] == _generated(text_model, 6, vector.with_(coefficient=20.0))
    assert steps[-1].texts[0] != steps[-1].texts[1]  # the coefficient is large enough to change the text
    assert "".join(s.plain for s in steps) == steps[-1].texts[0]
    assert steps[0].to_json() == {
        "step": 0,
        "plain": steps[0].plain,
        "steered": steps[0].steered,
        "plain_text": steps[0].texts[0],
        "steered_text": steps[0].texts[1],
    }


def test_coefficient_zero_steers_nothing(text_model: cs.HookedModel) -> None:
    vector = actadd_view(text_model, "love", "hate", 0)
    steps = generation_steps(
        text_model, PROMPT, vector=vector, coefficient=0.0, max_new_tokens=4, lock=threading.Lock()
    )
    assert all(s.plain == s.steered for s in steps)
    plain = list(
        generation_steps(text_model, PROMPT, vector=None, coefficient=1.0, max_new_tokens=3, lock=threading.Lock())
    )
    assert len(plain) == 3 and all(s.plain == s.steered for s in plain)


def test_a_features_vector_is_its_decoder_row_where_it_writes(text_model: cs.HookedModel) -> None:
    sae = create_sae(SAEConfig(architecture="relu", d_in=32, d_sae=8, hook_name="blocks.1.hook_resid_pre"))
    sae.initialize(torch.Generator().manual_seed(0))
    sources = feature_sources(text_model, [sae], random_transcoders(text_model, d_sae=12))
    v = feature_vector(sources["blocks.1.hook_resid_pre"], 3)
    assert torch.equal(v.vector, sae.W_dec[3].detach()) and v.hook == "blocks.1.hook_resid_pre" and v.start_pos == 1
    t = feature_vector(sources["transcoder.L0"], 11)
    assert t.hook == "blocks.0.hook_mlp_out" and torch.equal(t.vector, sources["transcoder.L0"].sae.W_dec[11])
    with pytest.raises(ServeInputError, match="feature 12 is out of range"):
        feature_vector(sources["transcoder.L0"], 12)
    steps = list(
        generation_steps(text_model, PROMPT, vector=v, coefficient=3.0, max_new_tokens=2, lock=threading.Lock())
    )
    assert len(steps) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens must be a whole number of at least 1"),
        ({"max_new_tokens": 117}, r"the prompt is 12 tokens .* context of 128; ask for at most 116 tokens"),
        ({"coefficient": float("nan")}, "the coefficient must be a finite number"),
        ({"prompt": ""}, "the prompt is empty"),
    ],
)
def test_bad_generation_requests_fail_before_the_first_step(
    text_model: cs.HookedModel, kwargs: dict, message: str
) -> None:
    args: dict[str, Any] = {"prompt": PROMPT, "vector": None, "coefficient": 1.0, "max_new_tokens": 2, **kwargs}
    with pytest.raises(ServeInputError, match=message):
        generation_steps(text_model, lock=threading.Lock(), **args)


def test_bad_actadd_requests_are_refused(text_model: cs.HookedModel) -> None:
    with pytest.raises(ServeInputError, match="layer 2 is out of range: this model has layers 0-1"):
        actadd_view(text_model, "love", "hate", 2)
    with pytest.raises(ServeInputError, match="the negative prompt is empty"):
        actadd_view(text_model, "love", "", 0)


def test_a_step_that_fails_mid_pass_leaves_no_hook_and_frees_the_lock(text_model: cs.HookedModel) -> None:
    # a vector of the residual width at an MLP hook of another width: the check passes, the steered pass fails
    vector = SteeringVector(torch.ones(32), "blocks.0.mlp.hook_post")
    lock = threading.Lock()
    steps = generation_steps(text_model, PROMPT, vector=vector, coefficient=1.0, max_new_tokens=2, lock=lock)
    with pytest.raises(ShapeError, match=r"cannot be applied at blocks\.0\.mlp\.hook_post"):
        next(steps)
    assert text_model.active_hooks() == [] and not lock.locked()
