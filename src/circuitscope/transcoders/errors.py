"""Errors of the transcoders package; each says what is wrong and how to fix it."""

from __future__ import annotations

from circuitscope.errors import CircuitscopeError, LoadError

__all__ = ["TranscoderConfigError", "TranscoderFormatError", "TranscoderModelError"]


class TranscoderConfigError(CircuitscopeError, ValueError):
    """A transcoder or training setting that is out of range or inconsistent."""


class TranscoderModelError(CircuitscopeError, ValueError):
    """Transcoders used on a model they were not made for (another model, a layer or width it lacks)."""


class TranscoderFormatError(LoadError):
    """A transcoder folder or file that is missing, damaged, of a newer format or of an unknown layout."""
