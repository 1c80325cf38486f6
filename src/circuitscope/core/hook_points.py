"""Hook points: named places in the forward pass where a function may read or rewrite a tensor.

A hook function has the TransformerLens signature ``fn(tensor, hook) -> tensor | None``:
``hook`` is the :class:`HookPoint` (``hook.name``, ``hook.layer``); returning a tensor
replaces the activation (same shape, dtype and device: anything else is refused with an error
naming the hook), returning ``None`` leaves it alone.
A backward hook gets the gradient of the activation and may return a replacement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import torch

from circuitscope.errors import HookError, ShapeError

__all__ = ["Direction", "HookFn", "HookHandle", "HookPoint"]

HookFn = Callable[..., "torch.Tensor | None"]
Direction = Literal["fwd", "bwd"]


class HookHandle:
    """Removes one hook function from one hook point; removing twice is harmless."""

    __slots__ = ("_direction", "_fn", "_point")

    def __init__(self, point: HookPoint, fn: HookFn, direction: Direction) -> None:
        self._point: HookPoint | None = point
        self._fn = fn
        self._direction: Direction = direction

    def remove(self) -> None:
        point, self._point = self._point, None
        if point is not None:
            point._remove(self._fn, self._direction)

    @property
    def attached(self) -> bool:
        return self._point is not None


class HookPoint:
    """One named activation. Cheap when nothing is attached: the model only wires it in while active."""

    __slots__ = ("_on_change", "bwd", "fwd", "layer", "name")

    def __init__(self, name: str, layer: int | None, on_change: Callable[[HookPoint], None]) -> None:
        self.name = name
        self.layer = layer
        self.fwd: list[HookFn] = []
        self.bwd: list[HookFn] = []
        self._on_change = on_change

    def __repr__(self) -> str:
        return f"HookPoint({self.name!r}, fwd={len(self.fwd)}, bwd={len(self.bwd)})"

    @property
    def active(self) -> bool:
        return bool(self.fwd) or bool(self.bwd)

    def add(self, fn: HookFn, direction: Direction = "fwd") -> HookHandle:
        if not callable(fn):
            raise HookError(f"hook for {self.name!r} must be callable fn(tensor, hook), got {fn!r}")
        if direction not in get_args(Direction):
            raise HookError(f"direction must be 'fwd' or 'bwd', got {direction!r}")
        was_active = self.active
        (self.fwd if direction == "fwd" else self.bwd).append(fn)
        if not was_active:
            self._on_change(self)
        return HookHandle(self, fn, direction)

    def _remove(self, fn: HookFn, direction: Direction) -> None:
        fns = self.fwd if direction == "fwd" else self.bwd
        for i, f in enumerate(fns):
            if f is fn:
                del fns[i]
                break
        if not self.active:
            self._on_change(self)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Run the forward hooks on ``x`` in order; attach the backward hooks to the result."""
        for fn in tuple(self.fwd):
            out = fn(x, hook=self)
            if out is not None:
                if not isinstance(out, torch.Tensor) or out.dtype != x.dtype or out.device != x.device:
                    raise self._bad_replacement(fn, x, out)
                if out.shape != x.shape:
                    raise ShapeError(
                        f"hook {getattr(fn, '__name__', fn)!r} on {self.name!r} returned shape "
                        f"{tuple(out.shape)}, but the activation has shape {tuple(x.shape)}; "
                        "a replacement must have the same shape"
                    )
                x = out
        if self.bwd and x.requires_grad:
            for fn in tuple(self.bwd):
                x.register_hook(_GradHook(fn, self))
        return x

    def _bad_replacement(self, fn: HookFn, x: torch.Tensor, out: object, kind: str = "activation") -> HookError:
        """The error for a hook's return value that is not a tensor, or of another dtype or device."""
        what = f"{'backward ' if kind == 'gradient' else ''}hook {getattr(fn, '__name__', fn)!r} on {self.name!r}"
        if not isinstance(out, torch.Tensor):
            return HookError(
                f"{what} returned {type(out).__name__}; return a tensor to replace the {kind} or None to keep it"
            )
        return HookError(
            f"{what} returned a {out.dtype} tensor on {out.device}, but the {kind} is {x.dtype} on {x.device}; "
            "a replacement must match it: return out.to(x.dtype) (and .to(x.device)), or edit x in place"
        )


class _GradHook:
    """Adapts ``fn(grad, hook)`` to ``Tensor.register_hook``."""

    __slots__ = ("fn", "point")

    def __init__(self, fn: HookFn, point: HookPoint) -> None:
        self.fn = fn
        self.point = point

    def __call__(self, grad: torch.Tensor) -> torch.Tensor | None:
        out = self.fn(grad, hook=self.point)
        if out is not None:
            if not isinstance(out, torch.Tensor) or out.dtype != grad.dtype or out.device != grad.device:
                raise self.point._bad_replacement(self.fn, grad, out, "gradient")
            if out.shape != grad.shape:
                raise ShapeError(
                    f"backward hook {getattr(self.fn, '__name__', self.fn)!r} on {self.point.name!r} returned shape "
                    f"{tuple(out.shape)}, but the gradient has shape {tuple(grad.shape)}; "
                    "a replacement must have the same shape"
                )
        return out
