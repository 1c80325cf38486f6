"""Hook points on the in-context regression models: the TransformerLens names, on continuous inputs.

The regression models of :mod:`circuitscope.toy.icl.models` read vectors, not token ids, so they
are not Hugging Face language models and :class:`~circuitscope.core.hooked_model.HookedModel`
cannot wrap them. They own :class:`~circuitscope.core.hook_points.HookPoint` objects instead and
call them in their forward pass under the usual names (``blocks.0.hook_resid_pre``,
``blocks.0.attn.hook_pattern``, ...): ``model.run_with_hooks(tokens, fwd_hooks=[(name, fn)])``
and ``model.run_with_cache(tokens, names)`` behave as on a HookedModel (a hook returning a tensor
replaces the activation; the name filters are those of :func:`circuitscope.core.names.resolve_names`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from circuitscope.core.hook_points import HookFn, HookHandle, HookPoint
from circuitscope.core.names import NameFilter, closest_names, resolve_names
from circuitscope.errors import HookError, HookNameError

__all__ = ["HookedRegressor"]

Hooks = Sequence[tuple[str, HookFn]]


def _unchanged(_point: HookPoint) -> None:
    """The points are always called in the forward pass: nothing to wire in when one becomes active."""


class HookedRegressor(nn.Module):
    """A model of in-context regression with named hook points; subclasses define ``forward``."""

    def __init__(self) -> None:
        super().__init__()
        self._points: dict[str, HookPoint] = {}

    def _add_point(self, name: str, layer: int | None = None) -> HookPoint:
        point = HookPoint(name, layer, _unchanged)
        self._points[name] = point
        return point

    def point(self, name: str) -> HookPoint:
        """The hook point ``name`` (unknown names name the closest valid ones)."""
        found = self._points.get(name)
        if found is None:
            near = ", ".join(repr(n) for n in closest_names(name, self._points))
            raise HookNameError(f"unknown hook name {name!r}; closest valid names: {near}. See model.hook_names.")
        return found

    @property
    def hook_names(self) -> list[str]:
        """Every hook name, in forward order."""
        return list(self._points)

    @contextmanager
    def hooks(self, fwd_hooks: Hooks = (), bwd_hooks: Hooks = ()) -> Iterator[HookedRegressor]:
        """Attach ``(name, fn)`` hooks (a name may be a glob) for the duration of the block."""
        handles: list[HookHandle] = []
        try:
            for hooks, direction in ((fwd_hooks, "fwd"), (bwd_hooks, "bwd")):
                for entry in hooks:
                    if not (isinstance(entry, tuple) and len(entry) == 2):
                        raise HookError(f"hooks are (name, fn) pairs, got {entry!r}")
                    for name in resolve_names(entry[0], self.hook_names):
                        handles.append(self.point(name).add(entry[1], direction))  # type: ignore[arg-type]
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """The prediction for the query (the last token) of each task [batch]; subclasses define it."""
        raise NotImplementedError

    def run_with_hooks(self, tokens: torch.Tensor, fwd_hooks: Hooks = (), bwd_hooks: Hooks = ()) -> torch.Tensor:
        """One forward pass with hooks attached for its duration only."""
        with self.hooks(fwd_hooks, bwd_hooks):
            return self(tokens)

    def run_with_cache(
        self, tokens: torch.Tensor, names: NameFilter = None, *, grad: bool = False
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The predictions and the activations ``names`` selects (None: all), detached unless ``grad``."""
        cache: dict[str, torch.Tensor] = {}

        def save(x: torch.Tensor, hook: HookPoint) -> None:
            cache[hook.name] = x if grad else x.detach()

        selected = resolve_names(names, self.hook_names)
        with self.hooks([(name, save) for name in selected]):
            return self(tokens), cache
