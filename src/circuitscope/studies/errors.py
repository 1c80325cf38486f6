"""The studies' errors."""

from __future__ import annotations

from circuitscope.errors import CircuitscopeError

__all__ = ["StudyConfigError"]


class StudyConfigError(CircuitscopeError, ValueError):
    """A study configuration that cannot run (a template without its slot, too few items...)."""
