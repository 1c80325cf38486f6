"""Transcoders: sparse stand-ins for a model's MLPs (per-layer and cross-layer): training, files, evaluation.

Typical use::

    import circuitscope as cs
    from circuitscope import transcoders as tc

    model = cs.load_model("gemma-3-270m")
    result = tc.train_transcoders(model, tc.TranscoderTrainConfig(tokens=200_000), out="tc/")
    print(tc.evaluate_transcoders(model, result.transcoders, tokens).to_json())
    with model.apply(tc.MLPReplacement(result.transcoders)):   # every MLP replaced by its transcoder
        logits = model(tokens)
"""

from circuitscope.transcoders.edit import EditMode, FeatureEdit
from circuitscope.transcoders.errors import TranscoderConfigError, TranscoderFormatError, TranscoderModelError
from circuitscope.transcoders.evaluate import LayerEval, ReplacementEval, TranscoderEvalResult, evaluate_transcoders
from circuitscope.transcoders.formats import (
    gemma_scope_transcoders,
    load_circuit_tracer,
    load_gemma_scope,
    save_circuit_tracer,
)
from circuitscope.transcoders.io import load_transcoders, read_transcoder_config, save_transcoders
from circuitscope.transcoders.modules import (
    InputSite,
    TranscoderArchitecture,
    TranscoderConfig,
    TranscoderKind,
    TranscoderSet,
    input_site_for,
)
from circuitscope.transcoders.replacement import MLPReplacement
from circuitscope.transcoders.train import TranscoderTrainResult, fold_scales, train_transcoders, transcoder_config
from circuitscope.transcoders.train_config import TranscoderTrainConfig

__all__ = [
    "EditMode",
    "FeatureEdit",
    "InputSite",
    "LayerEval",
    "MLPReplacement",
    "ReplacementEval",
    "TranscoderArchitecture",
    "TranscoderConfig",
    "TranscoderConfigError",
    "TranscoderEvalResult",
    "TranscoderFormatError",
    "TranscoderKind",
    "TranscoderModelError",
    "TranscoderSet",
    "TranscoderTrainConfig",
    "TranscoderTrainResult",
    "evaluate_transcoders",
    "fold_scales",
    "gemma_scope_transcoders",
    "input_site_for",
    "load_circuit_tracer",
    "load_gemma_scope",
    "load_transcoders",
    "read_transcoder_config",
    "save_circuit_tracer",
    "save_transcoders",
    "train_transcoders",
    "transcoder_config",
]
