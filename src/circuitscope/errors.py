"""Errors raised by circuitscope.

Every error says what is wrong and how to fix it. They all derive from
:class:`CircuitscopeError`, so ``except CircuitscopeError`` catches any of them.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "CircuitscopeError",
    "DamagedCheckpointWarning",
    "HookError",
    "HookNameError",
    "LoadError",
    "OptionError",
    "OutputError",
    "ShapeError",
    "TokenizationError",
    "UnsupportedAnalysisError",
    "UnsupportedModelError",
    "require_at_least",
]


class CircuitscopeError(Exception):
    """Base class of every error circuitscope raises on purpose."""


class HookNameError(CircuitscopeError, KeyError):
    """A hook name that the model does not have."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text.
        return str(self.args[0]) if self.args else ""


class HookError(CircuitscopeError, TypeError):
    """A hook function that cannot be used: not callable, or returning something that cannot replace
    the activation (not a tensor, another dtype or another device)."""


class TokenizationError(CircuitscopeError, ValueError):
    """Text that does not tokenize the way the caller needs (not one token, too long, ...)."""


class ShapeError(CircuitscopeError, ValueError):
    """A tensor, layer or head index that does not fit the model."""


class LoadError(CircuitscopeError, OSError):
    """A model that cannot be loaded: missing, corrupt or truncated files, or a missing extra."""


class OptionError(CircuitscopeError, ValueError):
    """A command-line option whose value is out of range or does not fit the model or the other options."""


class OutputError(CircuitscopeError, OSError):
    """A file or folder that cannot be written: a folder where a file is expected (or the reverse), an
    unwritable location, or a write that failed (disk full, folder removed)."""


class UnsupportedModelError(CircuitscopeError, ValueError):
    """A Hugging Face architecture no adapter in :mod:`circuitscope.models` covers."""


class UnsupportedAnalysisError(UnsupportedModelError):
    """An analysis the model's family cannot support: per-head hooks, weights or analyses on a state-space
    model (no attention heads), MLP weights of a block without an MLP. The message names the family, the
    analysis and what to use instead."""


class DamagedCheckpointWarning(UserWarning):
    """Resuming skipped damaged checkpoints and continued from an older intact one (the message names both)."""


def require_at_least(
    config: object, names: Iterable[str], error: type[Exception] = ValueError, *, minimum: int = 1, prefix: str = ""
) -> None:
    """Raise ``error`` for the first of ``config``'s fields ``names`` below ``minimum``.

    The message is ``"{prefix}{name} must be at least {minimum}, got {value}"``: the check every config's
    ``__post_init__`` makes of its counts, written once.
    """
    for name in names:
        value = getattr(config, name)
        if value < minimum:
            raise error(f"{prefix}{name} must be at least {minimum}, got {value}")
