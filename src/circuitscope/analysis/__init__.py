"""Analyses: one module per analysis, each a function returning a typed result, its plot beside it."""

from circuitscope.analysis.ablation import (
    AblationResult,
    Component,
    HeadAblationScan,
    ablate,
    head_ablation_scan,
    heads,
    neurons,
)
from circuitscope.analysis.attribution import (
    AttributionCorrelation,
    AttributionResult,
    AttributionScores,
    attribution_correlation,
    attribution_patching,
    hook_attribution,
)
from circuitscope.analysis.dla import DLAResult, direct_logit_attribution
from circuitscope.analysis.logit_lens import LogitLensResult, logit_lens
from circuitscope.analysis.path_patching import PathPatchingResult, path_patching
from circuitscope.analysis.patching import PATCH_TARGETS, PatchingResult, activation_patching, naive_activation_patching

__all__ = [
    "PATCH_TARGETS",
    "AblationResult",
    "AttributionCorrelation",
    "AttributionResult",
    "AttributionScores",
    "Component",
    "DLAResult",
    "HeadAblationScan",
    "LogitLensResult",
    "PathPatchingResult",
    "PatchingResult",
    "ablate",
    "activation_patching",
    "attribution_correlation",
    "attribution_patching",
    "direct_logit_attribution",
    "head_ablation_scan",
    "heads",
    "hook_attribution",
    "logit_lens",
    "naive_activation_patching",
    "neurons",
    "path_patching",
]
