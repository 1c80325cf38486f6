"""The errors of fine-tuning a user can cause."""

from __future__ import annotations

from circuitscope.errors import CircuitscopeError

__all__ = ["FinetuneError"]


class FinetuneError(CircuitscopeError, ValueError):
    """A fine-tuning setting or input that cannot work (the message says what to change)."""
