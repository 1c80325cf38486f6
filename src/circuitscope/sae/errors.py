"""Errors of the SAE package; each says what is wrong and how to fix it."""

from __future__ import annotations

from circuitscope.errors import CircuitscopeError, LoadError, ShapeError

__all__ = ["ActivationStoreError", "SAEConfigError", "SAEFormatError", "SAEShapeError", "UnknownArchitectureError"]


class ActivationStoreError(CircuitscopeError, OSError):
    """An activation folder that cannot be read or resumed: bad manifest, missing or corrupt shard."""


class SAEConfigError(CircuitscopeError, ValueError):
    """A configuration value that is out of range or inconsistent."""


class UnknownArchitectureError(SAEConfigError):
    """An SAE architecture name that is not registered."""


class SAEFormatError(LoadError):
    """An SAE folder (``cfg.json`` + ``sae_weights.safetensors``) that is missing, corrupt or inconsistent."""


class SAEShapeError(ShapeError):
    """An SAE whose width does not fit the activation it is used on."""
