"""The intervention protocol: a value that knows which hooks it needs and which models it fits.

A steering vector, an SAE splice, ... each implements :class:`Intervention`; ``model.apply``,
``model(tokens, interventions=...)``, ``run_with_hooks``, ``run_with_cache`` and ``generate`` take
any of them. It lives in ``core`` because :class:`~circuitscope.core.hooked_model.HookedModel`
accepts it; its public home is :mod:`circuitscope.interventions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from circuitscope.core.hook_points import HookFn
from circuitscope.errors import HookError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["Intervention", "intervention_hooks"]


@runtime_checkable
class Intervention(Protocol):
    """Something that edits a forward pass through hooks.

    ``check(model)`` raises a :class:`~circuitscope.errors.CircuitscopeError` for a model the
    intervention does not belong to (another model, a hook it lacks, another width);
    ``hooks(model)`` gives the ``(hook name, fn)`` pairs to attach. The model calls ``check``
    first, then ``hooks``, once per scope: hook functions may keep state for that scope only
    (a steering vector counts positions across cached generation steps).
    """

    def check(self, model: HookedModel) -> None: ...

    def hooks(self, model: HookedModel) -> list[tuple[str, HookFn]]: ...


def intervention_hooks(
    model: HookedModel, interventions: Intervention | Sequence[Intervention]
) -> list[tuple[str, HookFn]]:
    """Every intervention checked against ``model``, then their hooks in the order given."""
    items = [interventions] if isinstance(interventions, Intervention) else list(interventions)
    for item in items:
        if not isinstance(item, Intervention):
            raise HookError(
                f"interventions are values with .check(model) and .hooks(model) (a SteeringVector, an "
                f"SAESplice, ...), got {type(item).__name__}; pass plain (name, fn) pairs as hooks instead"
            )
    for item in items:
        item.check(model)
    return [pair for item in items for pair in item.hooks(model)]
