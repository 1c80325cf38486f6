"""The steering view: build a vector (ActAdd from two prompts, or a feature's decoder direction) and generate with
and without it, side by side, one token at a time.

:func:`generation_steps` is greedy decoding over the whole sequence at every step (no key-value cache), so a step
needs nothing from the one before it but the tokens: the model's lock is taken per step, and other requests run
between steps. The steered step attaches the vector (a :class:`~circuitscope.steering.SteeringVector`, through
``model.apply``) for its own forward pass only. Its absolute positions (``start_pos``, ``end_pos``) mean what they
mean in ``model.generate(prompt, interventions=[vector])``, and the tokens are the same.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch

from circuitscope.core.hooked_model import HookedModel
from circuitscope.serve.errors import ServeInputError
from circuitscope.serve.views._checks import check_layer, prompt_tokens
from circuitscope.serve.views._json import token_text
from circuitscope.serve.views.features import FeatureSource
from circuitscope.steering import SteeringVector, actadd_vector

__all__ = ["GenerationStep", "actadd_view", "feature_vector", "generation_steps"]


def actadd_view(model: HookedModel, positive: str, negative: str, layer: int) -> SteeringVector:
    """The ActAdd vector (:func:`~circuitscope.steering.actadd_vector`) of ``positive`` minus ``negative`` at
    ``blocks.{layer}.hook_resid_pre``, added at the prompt's first position after BOS as in the paper."""
    check_layer(model, layer)
    prompt_tokens(model, positive, "positive prompt")
    prompt_tokens(model, negative, "negative prompt")
    return actadd_vector(model, positive, negative, f"blocks.{layer}.hook_resid_pre")


def feature_vector(source: FeatureSource, index: int) -> SteeringVector:
    """Feature ``index``'s decoder direction as a vector at the hook its decoder writes to, added at every position
    after the first (BOS, which the features leave alone)."""
    index = source.check_feature(index)
    direction = source.sae.W_dec[index].detach().float().clone()
    details = {"source": source.name, "feature": index}
    return SteeringVector(direction, source.writes_to, start_pos=1, method="manual", details=details)


@dataclass(frozen=True)
class GenerationStep:
    """One generated token of each run."""

    step: int
    """Which token (0 = the first generated)."""
    tokens: tuple[str, str]
    """The new token of the plain run and of the steered run."""
    texts: tuple[str, str]
    """Everything each run has generated so far, decoded as one text (plain, steered)."""

    @property
    def plain(self) -> str:
        return self.tokens[0]

    @property
    def steered(self) -> str:
        return self.tokens[1]

    def to_json(self) -> dict[str, Any]:
        (plain, steered), (plain_text, steered_text) = self.tokens, self.texts
        texts = {"plain_text": plain_text, "steered_text": steered_text}
        return {"step": self.step, "plain": plain, "steered": steered, **texts}


def _check_generation(model: HookedModel, n_prompt: int, coefficient: object, max_new_tokens: object) -> float:
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ServeInputError(f"max_new_tokens must be a whole number of at least 1, got {max_new_tokens!r:.40}")
    if n_prompt + max_new_tokens > model.cfg.n_ctx:
        raise ServeInputError(
            f"the prompt is {n_prompt} tokens and max_new_tokens={max_new_tokens}: more than the model's context "
            f"of {model.cfg.n_ctx}; ask for at most {model.cfg.n_ctx - n_prompt} tokens or shorten the prompt"
        )
    if isinstance(coefficient, bool) or not isinstance(coefficient, int | float) or not math.isfinite(coefficient):
        raise ServeInputError(f"the coefficient must be a finite number, got {coefficient!r:.40}")
    return float(coefficient)


@torch.no_grad()
def _next(model: HookedModel, ids: torch.Tensor, vector: SteeringVector | None) -> int:
    """The greedy next token after ``ids`` [1, pos], with ``vector`` attached for this pass only."""
    if vector is None:
        return int(model(ids)[0, -1].argmax())
    with model.apply(vector):
        return int(model(ids)[0, -1].argmax())


def generation_steps(
    model: HookedModel,
    prompt: str,
    *,
    vector: SteeringVector | None,
    coefficient: float,
    max_new_tokens: int,
    lock: AbstractContextManager[Any],
) -> Iterator[GenerationStep]:
    """``max_new_tokens`` greedy steps of ``prompt`` without and with ``vector`` at ``coefficient`` (None: both runs
    are plain), each step under ``lock``. Everything is checked here, before the first step is asked for (a bad
    request fails before a streamed response starts)."""
    tokens = prompt_tokens(model, prompt)
    coefficient = _check_generation(model, tokens.shape[1], coefficient, max_new_tokens)
    steering = None
    if vector is not None:
        vector.check(model)
        steering = vector.with_(coefficient=coefficient)
    return _steps(model, tokens, steering, max_new_tokens, lock)


def _steps(
    model: HookedModel,
    tokens: torch.Tensor,
    steering: SteeringVector | None,
    max_new_tokens: int,
    lock: AbstractContextManager[Any],
) -> Iterator[GenerationStep]:
    plain, steered = tokens, tokens
    start = tokens.shape[1]
    for step in range(max_new_tokens):
        with lock:
            a = _next(model, plain, None)
            b = a if steering is None else _next(model, steered, steering)
        plain = torch.cat([plain, plain.new_tensor([[a]])], dim=1)
        steered = torch.cat([steered, steered.new_tensor([[b]])], dim=1)
        plain_text, steered_text = model.to_string(plain[0, start:]), model.to_string(steered[0, start:])
        assert isinstance(plain_text, str) and isinstance(steered_text, str)
        yield GenerationStep(step, (token_text(model, a), token_text(model, b)), (plain_text, steered_text))
