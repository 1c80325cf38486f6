"""Apply steering vectors as hook functions: for ``model.hooks``, ``run_with_hooks`` and ``generate``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from circuitscope.core.hook_points import HookFn
from circuitscope.errors import ShapeError
from circuitscope.steering.vector import SteeringVector

if TYPE_CHECKING:
    from circuitscope.core.hook_points import HookPoint
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["apply_steering", "steering_hooks"]


def apply_steering(x: torch.Tensor, vector: SteeringVector, offset: int = 0) -> torch.Tensor:
    """``x`` [batch, pos, ..., d] steered at absolute positions in [start_pos, end_pos) (``x[:, 0]`` is ``offset``)."""
    if x.shape[-1] != vector.d:
        raise ShapeError(
            f"steering vector of dimension {vector.d} cannot be applied at {vector.hook}, "
            f"whose activation has shape {tuple(x.shape)} (last axis {x.shape[-1]})"
        )
    first = max(vector.start_pos - offset, 0)
    last = x.shape[1] if vector.end_pos is None else min(max(vector.end_pos - offset, 0), x.shape[1])
    if first >= last or vector.coefficient == 0.0:
        return x
    v = vector.vector.to(device=x.device, dtype=x.dtype)
    out = x.clone()
    part = out[:, first:last]
    if vector.mode == "add":
        part.add_(vector.coefficient * v)
    else:
        u = v / v.norm().clamp_min(1e-12)
        part.sub_(vector.coefficient * (part @ u)[..., None] * u)
    return out


def _hook(vector: SteeringVector) -> HookFn:
    state = {"next": 0}

    def steer(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        # a pass over several positions starts a sequence; a one-position pass continues it
        # (cached generation feeds one new token per step), so absolute positions stay right
        offset = 0 if x.shape[1] > 1 else state["next"]
        state["next"] = offset + x.shape[1]
        return apply_steering(x, vector, offset)

    steer.__qualname__ = f"steer[{vector.method}:{vector.mode}:{vector.coefficient:g}@{vector.hook}]"
    return steer


def steering_hooks(
    vectors: SteeringVector | Sequence[SteeringVector], model: HookedModel | None = None
) -> list[tuple[str, HookFn]]:
    """Forward hooks applying ``vectors``: ``[(hook_name, fn), ...]``.

    Use them with ``with model.hooks(steering_hooks(v)):``, ``model.run_with_hooks(tokens, steering_hooks(v))``
    or ``model.generate(prompt, hooks=steering_hooks(v))``. Given ``model``, each vector is checked
    against it first (hook exists, same model, same width). Each call makes fresh hook functions:
    their only state is the position count that lets ``start_pos`` work during cached generation
    (a forward pass over more than one position restarts the count at 0; a one-position pass
    continues from the previous one). Several vectors at one hook apply in the order given.
    """
    items = [vectors] if isinstance(vectors, SteeringVector) else list(vectors)
    for v in items:
        if not isinstance(v, SteeringVector):
            raise TypeError(f"expected SteeringVector objects, got {type(v).__name__}")
        if model is not None:
            v.check(model)
    return [(v.hook, _hook(v)) for v in items]
