"""Steering vectors as plain ``(name, fn)`` hooks: for ``model.hooks``, ``run_with_hooks`` and ``generate(hooks=)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from circuitscope.core.hook_points import HookFn
from circuitscope.steering.vector import SteeringVector, steering_hook

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["steering_hooks"]


def steering_hooks(
    vectors: SteeringVector | Sequence[SteeringVector], model: HookedModel | None = None
) -> list[tuple[str, HookFn]]:
    """Forward hooks applying ``vectors``: ``[(hook_name, fn), ...]``.

    Use them with ``with model.hooks(steering_hooks(v)):``, ``model.run_with_hooks(tokens, steering_hooks(v))``
    or ``model.generate(prompt, hooks=steering_hooks(v))`` (or pass the vectors themselves as
    ``interventions=``). Given ``model``, each vector is checked against it first (hook exists, same
    model, same width). Each call makes fresh hook functions: their only state is the position count
    that lets ``start_pos`` work during cached generation (a forward pass over more than one position
    restarts the count at 0; a one-position pass continues from the previous one). Several vectors at
    one hook apply in the order given.
    """
    items = [vectors] if isinstance(vectors, SteeringVector) else list(vectors)
    for v in items:
        if not isinstance(v, SteeringVector):
            raise TypeError(f"expected SteeringVector objects, got {type(v).__name__}")
        if model is not None:
            v.check(model)
    return [(v.hook, steering_hook(v)) for v in items]
