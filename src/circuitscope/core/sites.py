"""Sites: the PyTorch hooks that carry hook points, installed only while a hook point needs them.

A hook point (core/hook_points.py) depends on one or more sites: a forward or forward-pre hook on one of
the family's own modules, or the attention core inside the attention function (switched, not hooked).
Each site counts the active hook points that need it and installs its hook on the first, removes it after
the last, so a model with no active hook point runs exactly the plain Hugging Face forward.
:class:`~circuitscope.core.wiring.Instrumentation` builds them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from circuitscope.core.attention import AttentionCore

__all__ = ["CoreSite", "LayerState", "Site", "first", "replace_first"]


class LayerState:
    """Tensors one site leaves for a later site of the same forward pass."""

    __slots__ = ("mlp_in", "resid_pre", "z")

    def __init__(self) -> None:
        self.resid_pre: torch.Tensor | None = None
        self.z: torch.Tensor | None = None
        self.mlp_in: torch.Tensor | None = None  # a post-norm block summing before its norm: the MLP's residual


class Site:
    """One PyTorch hook on one module, installed while some hook point needs it."""

    __slots__ = ("count", "handle", "install")

    def __init__(self, install: Callable[[], Any]) -> None:
        self.install = install
        self.count = 0
        self.handle: Any = None

    def acquire(self) -> None:
        if self.count == 0:
            self.handle = self.install()
        self.count += 1

    def release(self) -> None:
        self.count -= 1
        if self.count == 0:
            if self.handle is not None:
                self.handle.remove()
            self.handle = None


class CoreSite(Site):
    """The attention core is switched, not hooked (for a family computing attention in its own code,
    ``install`` also reroutes its attention method while the core is in use, see core/own_attention)."""

    __slots__ = ("core",)

    def __init__(self, core: AttentionCore, install: Callable[[], Any] | None = None) -> None:
        super().__init__(install or (lambda: None))
        self.core = core

    def acquire(self) -> None:
        super().acquire()
        self.core.refresh()

    def release(self) -> None:
        super().release()
        self.core.refresh()


def first(output: Any) -> torch.Tensor:
    """A module's main output (the first element of a tuple output)."""
    return output[0] if isinstance(output, tuple) else output


def replace_first(output: Any, value: torch.Tensor) -> Any:
    """The module's output with its main tensor replaced by ``value``."""
    return (value, *output[1:]) if isinstance(output, tuple) else value
