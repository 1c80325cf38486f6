"""A steering sweep, the explorer's third background job: an ActAdd vector over layers x coefficients.

The library's :func:`~circuitscope.steering.steering_sweep` does the work: at each layer the vector is
``actadd_vector(positive, negative)`` read and written at ``blocks.L.hook_resid_pre``; its effect is
:func:`~circuitscope.steering.target_logprob` of the target words after the prompt, its damage the change of
next-token loss on neutral texts (the server's ``--data`` texts, else the prompt itself). The inputs are checked
by :func:`check_sweep` before the job is queued, so a bad request is a 400, not a failed job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from circuitscope.core.hooked_model import HookedModel
from circuitscope.progress import OnProgress
from circuitscope.serve.errors import ServeInputError
from circuitscope.serve.views._checks import check_layer, prompt_tokens, single_token
from circuitscope.steering import SteeringVector, actadd_vector, steering_sweep, target_logprob

__all__ = ["MAX_CELLS", "SweepRequest", "check_sweep", "sweep_job"]

MAX_CELLS = 64
"""Layer x coefficient cells of one sweep at most (each is two forward passes)."""
MAX_NEUTRAL = 8
"""Neutral texts the damage is measured on at most."""
MAX_NEUTRAL_CHARS = 400
"""Characters of each neutral text used at most."""


@dataclass(frozen=True)
class SweepRequest:
    """What one sweep measures, checked against the model by :func:`check_sweep`."""

    positive: str
    """The ActAdd prompt the vector points towards."""
    negative: str
    """The ActAdd prompt it points away from."""
    prompt: str
    """The prompt after which the target words' log-probability is the effect."""
    targets: tuple[str, ...]
    """Target words, each a single token (e.g. " love")."""
    layers: tuple[int, ...]
    """Layers the vector is read and written at."""
    coefficients: tuple[float, ...]
    """Coefficients it is scaled by."""


def check_sweep(model: HookedModel, request: SweepRequest) -> None:
    """Refuse an empty or oversized grid, a layer out of range, an empty prompt or a target that is not one token."""
    for text, what in ((request.positive, "positive prompt"), (request.negative, "negative prompt")):
        prompt_tokens(model, text, what)
    prompt_tokens(model, request.prompt)
    if not request.targets:
        raise ServeInputError("give at least one target word, e.g. ' love'")
    for target in request.targets:
        single_token(model, target, "target word")
    if not request.layers or not request.coefficients:
        raise ServeInputError("give at least one layer and one coefficient")
    for layer in request.layers:
        check_layer(model, layer)
    cells = len(request.layers) * len(request.coefficients)
    if cells > MAX_CELLS:
        raise ServeInputError(f"{cells} layer x coefficient cells is over the limit of {MAX_CELLS}: sweep fewer")


def sweep_job(
    model: HookedModel, request: SweepRequest, neutral_texts: Sequence[str], *, on_progress: OnProgress | None = None
) -> dict[str, Any]:
    """The sweep's :class:`~circuitscope.steering.SteeringSweep` as JSON (effect and damage per layer x coefficient,
    the unsteered effect and loss), with the request and the neutral texts it used."""
    check_sweep(model, request)
    neutral = [t[:MAX_NEUTRAL_CHARS] for t in neutral_texts[:MAX_NEUTRAL] if t.strip()] or [request.prompt]

    def make(layer: int) -> SteeringVector:
        return actadd_vector(model, request.positive, request.negative, f"blocks.{layer}.hook_resid_pre")

    effect = target_logprob([request.prompt], list(request.targets))
    sweep = steering_sweep(
        model, make, list(request.layers), list(request.coefficients), effect, neutral, on_progress=on_progress
    )
    return {
        **sweep.to_json(),
        "effect_name": sweep.effect_name,
        "baseline_effect": sweep.baseline_effect,
        "request": {**request.__dict__, "targets": list(request.targets)},
        "neutral_texts": len(neutral),
    }
