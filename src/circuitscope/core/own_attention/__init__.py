"""Attention hooks for families that compute attention in their own code (GPT-Neo, Falcon).

transformers routes most families' attention through its registry, where circuitscope's attention
function sees q, k, v and the mask (core/attention.py). A few families compute it themselves, each
in its own way (GPT-Neo: unscaled float32 scores under a local-window buffer; Falcon: rotary or ALiBi,
multi-query or grouped fused heads). Their adapter names the method that does it (``attn_method``)
and a hook module of this package (``attn_hooks``) that recomputes it with the family's own math,
calling the :class:`~circuitscope.core.attention.AttentionCore` hooks (``hook_rot_q/k``,
``hook_attn_scores``, ``hook_pattern``) where that math has them.

The method is rerouted only while one of those hooks is active (:func:`rerouting`); otherwise the
family's own method runs untouched, bit for bit. A hook module defines
``hooked(core, module, *args, **kwargs)`` with the rerouted method's signature after ``module``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol

from torch import nn

from circuitscope.core.attention import AttentionCore
from circuitscope.models.base import Adapter

__all__ = ["Handle", "HookedMethod", "rerouting", "routes_through_registry"]


class HookedMethod(Protocol):
    """A hook module's ``hooked``: the family's attention method, recomputed with the core's hooks."""

    def __call__(self, core: AttentionCore, module: nn.Module, *args: Any, **kwargs: Any) -> Any: ...


class Handle:
    """Undoes one rerouting: the module's own method is visible again."""

    def __init__(self, module: nn.Module, method: str) -> None:
        self._module = module
        self._method = method

    def remove(self) -> None:
        self._module.__dict__.pop(self._method, None)


def routes_through_registry(adapter: Adapter) -> bool:
    """Whether the family's attention goes through transformers' registry (else the adapter names its own)."""
    return adapter.attn_hooks is None


def _hooked(adapter: Adapter) -> HookedMethod:
    module = importlib.import_module(f"{__name__}.{adapter.attn_hooks}")
    return module.hooked


def rerouting(module: nn.Module, adapter: Adapter, core: AttentionCore) -> Callable[[], Handle] | None:
    """What installs the rerouting of ``module``'s attention method through ``core`` (None: the registry's).

    The returned function shadows the method with an instance attribute (calling the family's own method
    whenever the core has fallen idle) and returns the :class:`Handle` that removes it.
    """
    if adapter.attn_method is None or adapter.attn_hooks is None:
        return None
    name = adapter.attn_method
    hooked = _hooked(adapter)
    if not callable(getattr(module, name, None)):
        raise AttributeError(
            f"adapter {adapter.family!r}: attn_method {name!r} is not a method of {type(module).__name__}"
        )

    def install() -> Handle:
        own = getattr(type(module), name).__get__(module)

        def routed(*args: Any, **kwargs: Any) -> Any:
            if not core.active:
                return own(*args, **kwargs)
            return hooked(core, module, *args, **kwargs)

        module.__dict__[name] = routed  # nn.Module looks instance attributes up before class methods
        return Handle(module, name)

    return install
