"""Errors of the toy models, trainer and labs (all :class:`~circuitscope.errors.CircuitscopeError`)."""

from __future__ import annotations

from circuitscope.errors import CircuitscopeError

__all__ = ["CheckpointError", "LabConfigError"]


class LabConfigError(CircuitscopeError, ValueError):
    """A lab or training setting that cannot work (p not prime, a fraction outside (0, 1), ...)."""


class CheckpointError(CircuitscopeError, ValueError):
    """A checkpoint folder that does not belong to this run, or files of an unknown format version."""
