"""The core: hooked models, hook points, activation caches, loading and tokens."""

from circuitscope.core.cache import ActivationCache, Stack
from circuitscope.core.config import ModelConfig
from circuitscope.core.hook_points import HookHandle, HookPoint
from circuitscope.core.hooked_model import ActiveHook, GenerationResult, HookedModel
from circuitscope.core.loading import DEFAULT_MODEL, load_model
from circuitscope.core.names import act_name
from circuitscope.core.transforms import center_unembed, center_writing_weights, fold_layer_norm

__all__ = [
    "DEFAULT_MODEL",
    "ActivationCache",
    "ActiveHook",
    "GenerationResult",
    "HookHandle",
    "HookPoint",
    "HookedModel",
    "ModelConfig",
    "Stack",
    "act_name",
    "center_unembed",
    "center_writing_weights",
    "fold_layer_norm",
    "load_model",
]
