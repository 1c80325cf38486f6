"""Steering the embedded Gemma-3-270M: 'Love' - 'Hate' at layer 2 raises P(' love'); coefficient 0 changes nothing."""

from __future__ import annotations

import pytest
import torch

import circuitscope as cs
from circuitscope.cli.steer import EFFECT_PROMPTS
from circuitscope.steering import actadd_vector, steering_hooks, target_logprob

pytestmark = pytest.mark.real

PROMPT = "I hate you because"


@torch.no_grad()
def test_love_hate_actadd_on_gemma() -> None:
    model = cs.load_model(cs.DEFAULT_MODEL)
    v = actadd_vector(model, "Love", "Hate", "blocks.2.hook_resid_pre")  # injected at position 1 only
    effect = target_logprob([PROMPT, *EFFECT_PROMPTS], [" love", " Love"])
    base = effect(model, [])
    assert effect(model, steering_hooks(v.with_(coefficient=0.0), model)) == base
    steered = effect(model, steering_hooks(v.with_(coefficient=2.0), model))
    assert steered > base + 1.0  # measured +1.68 nats: ' love' about 5x more likely
    text = model.generate(PROMPT, 16, hooks=steering_hooks(v.with_(coefficient=2.0), model)).text
    assert "love" in text and "love" not in model.generate(PROMPT, 16).text
    removed = model.run_with_hooks(PROMPT, steering_hooks(v.with_(mode="project"), model))
    assert torch.isfinite(removed).all() and model.active_hooks() == []
