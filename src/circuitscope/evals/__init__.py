"""Prompt-variant evaluations: questions with expected answers under several framings, scored by log-probability."""

from circuitscope.evals.harness import FramingScore, PromptVariantResult, bootstrap_ci, evaluate_prompt_variants
from circuitscope.evals.items import DEFAULT_FRAMINGS, EvalItem, EvalSetError, Framing, load_eval_items

__all__ = [
    "DEFAULT_FRAMINGS",
    "EvalItem",
    "EvalSetError",
    "Framing",
    "FramingScore",
    "PromptVariantResult",
    "bootstrap_ci",
    "evaluate_prompt_variants",
    "load_eval_items",
]
