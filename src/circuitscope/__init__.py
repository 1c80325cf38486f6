"""circuitscope: a workbench for mechanistic interpretability on Hugging Face models.

The public surface is re-exported here on purpose; everything else is internal.
"""

from circuitscope._version import __version__
from circuitscope.core.cache import ActivationCache, Stack
from circuitscope.core.config import ModelConfig
from circuitscope.core.hook_points import HookHandle, HookPoint
from circuitscope.core.hooked_model import ActiveHook, GenerationResult, HookedModel
from circuitscope.core.loading import DEFAULT_MODEL, load_model
from circuitscope.core.names import act_name
from circuitscope.core.transforms import center_unembed, center_writing_weights, fold_layer_norm
from circuitscope.errors import (
    CircuitscopeError,
    HookError,
    HookNameError,
    LoadError,
    ShapeError,
    TokenizationError,
    UnsupportedModelError,
)

__all__ = [
    "DEFAULT_MODEL",
    "ActivationCache",
    "ActiveHook",
    "CircuitscopeError",
    "GenerationResult",
    "HookError",
    "HookHandle",
    "HookNameError",
    "HookPoint",
    "HookedModel",
    "LoadError",
    "ModelConfig",
    "ShapeError",
    "Stack",
    "TokenizationError",
    "UnsupportedModelError",
    "__version__",
    "act_name",
    "center_unembed",
    "center_writing_weights",
    "fold_layer_norm",
    "load_model",
]
