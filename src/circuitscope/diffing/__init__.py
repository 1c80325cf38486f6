"""Model diffing: two models (or checkpoints) with one tokenizer, compared on the same text."""

from circuitscope.diffing.interpolation import Interpolation, interpolate, interpolated_model
from circuitscope.diffing.loss import Context, ContextOrder, LossDiff, loss_diff, per_token_loss
from circuitscope.diffing.pairing import (
    ModelMismatchError,
    TokenizerMismatchError,
    check_same_architecture,
    check_same_tokenizer,
)
from circuitscope.diffing.similarity import (
    AttentionDiff,
    LayerCKA,
    attention_diff,
    layer_cka,
    linear_cka,
)
from circuitscope.diffing.weights import WeightDiff, component_of, weight_diff

__all__ = [
    "AttentionDiff",
    "Context",
    "ContextOrder",
    "Interpolation",
    "LayerCKA",
    "LossDiff",
    "ModelMismatchError",
    "TokenizerMismatchError",
    "WeightDiff",
    "attention_diff",
    "check_same_architecture",
    "check_same_tokenizer",
    "component_of",
    "interpolate",
    "interpolated_model",
    "layer_cka",
    "linear_cka",
    "loss_diff",
    "per_token_loss",
    "weight_diff",
]
