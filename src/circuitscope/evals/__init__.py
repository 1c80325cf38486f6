"""Prompt-variant evaluations: questions with expected answers under several framings, scored by log-probability."""

from circuitscope.evals.harness import (
    DEFAULT_FRAMINGS,
    EvalItem,
    EvalSetError,
    Framing,
    PromptVariantResult,
    evaluate_prompt_variants,
    load_eval_items,
)

__all__ = [
    "DEFAULT_FRAMINGS",
    "EvalItem",
    "EvalSetError",
    "Framing",
    "PromptVariantResult",
    "evaluate_prompt_variants",
    "load_eval_items",
]
