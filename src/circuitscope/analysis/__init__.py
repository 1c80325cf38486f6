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
from circuitscope.analysis.composition import CompositionScores, composition_scores
from circuitscope.analysis.copying import CopyingScores, copy_suppression_scores, copying_scores, ov_copying
from circuitscope.analysis.dla import DLAResult, direct_logit_attribution
from circuitscope.analysis.head_ablation import HeadAblation, head_ablation_importance
from circuitscope.analysis.heads import (
    HeadScores,
    detector_scores,
    duplicate_token_scores,
    induction_scores,
    previous_token_scores,
)
from circuitscope.analysis.logit_lens import LogitLensResult, logit_lens
from circuitscope.analysis.max_activating import MaxActivating, max_activating
from circuitscope.analysis.patching import PATCH_TARGETS, PatchingResult, activation_patching, naive_activation_patching
from circuitscope.analysis.path_patching import PathPatchingResult, path_patching
from circuitscope.analysis.tracing import (
    HeadTraceResult,
    NeuronTraceResult,
    TraceConfig,
    TraceResult,
    causal_trace,
    trace_heads,
    trace_neurons,
)

__all__ = [
    "PATCH_TARGETS",
    "AblationResult",
    "AttributionCorrelation",
    "AttributionResult",
    "AttributionScores",
    "Component",
    "CompositionScores",
    "CopyingScores",
    "DLAResult",
    "HeadAblation",
    "HeadAblationScan",
    "HeadScores",
    "HeadTraceResult",
    "LogitLensResult",
    "MaxActivating",
    "NeuronTraceResult",
    "PatchingResult",
    "PathPatchingResult",
    "TraceConfig",
    "TraceResult",
    "ablate",
    "activation_patching",
    "attribution_correlation",
    "attribution_patching",
    "causal_trace",
    "composition_scores",
    "copy_suppression_scores",
    "copying_scores",
    "detector_scores",
    "direct_logit_attribution",
    "duplicate_token_scores",
    "head_ablation_importance",
    "head_ablation_scan",
    "heads",
    "hook_attribution",
    "induction_scores",
    "logit_lens",
    "max_activating",
    "naive_activation_patching",
    "neurons",
    "ov_copying",
    "path_patching",
    "previous_token_scores",
    "trace_heads",
    "trace_neurons",
]
