"""Errors raised by circuitscope.

Every error says what is wrong and how to fix it. They all derive from
:class:`CircuitscopeError`, so ``except CircuitscopeError`` catches any of them.
"""

from __future__ import annotations

__all__ = [
    "CircuitscopeError",
    "HookNameError",
    "LoadError",
    "ShapeError",
    "TokenizationError",
    "UnsupportedModelError",
]


class CircuitscopeError(Exception):
    """Base class of every error circuitscope raises on purpose."""


class HookNameError(CircuitscopeError, KeyError):
    """A hook name that the model does not have."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text.
        return str(self.args[0]) if self.args else ""


class TokenizationError(CircuitscopeError, ValueError):
    """Text that does not tokenize the way the caller needs (not one token, too long, ...)."""


class ShapeError(CircuitscopeError, ValueError):
    """A tensor, layer or head index that does not fit the model."""


class LoadError(CircuitscopeError, OSError):
    """A model that cannot be loaded: missing, corrupt or truncated files, or a missing extra."""


class UnsupportedModelError(CircuitscopeError, ValueError):
    """A Hugging Face architecture no adapter in :mod:`circuitscope.models` covers."""
