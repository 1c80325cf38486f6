"""The attention view: every head's pattern on the prompt, and each head's detector scores beside it.

The scores are :func:`~circuitscope.analysis.many_detector_scores` (previous-token, duplicate-token, induction) on
the library's standard detector input, :func:`~circuitscope.analysis.repeated_tokens_for_model` (``[BOS] r r``,
repeated random tokens): they do not depend on the prompt, so the workbench computes them once per server. The
patterns are the model's own ``attn.hook_pattern`` from one cached forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from circuitscope.analysis import DETECTORS, HeadScores, many_detector_scores, repeated_tokens_for_model
from circuitscope.core.capabilities import require_attention
from circuitscope.core.hooked_model import HookedModel
from circuitscope.serve.views._checks import prompt_tokens
from circuitscope.serve.views._json import round_sig

__all__ = ["AttentionView", "HeadScoresView", "attention_view", "head_scores"]


@dataclass(frozen=True)
class HeadScoresView:
    """Every head's score under each built-in detector, on the standard detector input."""

    scores: dict[str, HeadScores]
    """By detector name (``previous_token``, ``duplicate_token``, ``induction``): the ``[layer, head]`` scores."""

    def to_json(self) -> dict[str, Any]:
        return {name: round_sig(s.scores) for name, s in self.scores.items()}


@torch.no_grad()
def head_scores(model: HookedModel) -> HeadScoresView:
    """The detector scores of every head on repeated random tokens (seed 0), one forward pass per batch."""
    require_attention(model.cfg, "the attention view (head detector scores)")
    return HeadScoresView(many_detector_scores(model, repeated_tokens_for_model(model), DETECTORS))


@dataclass(frozen=True)
class AttentionView:
    """Every head's attention pattern on one prompt, with the heads' detector scores."""

    tokens: list[str]
    """The prompt's tokens as text."""
    patterns: torch.Tensor
    """``[layer, head, query, key]``: each head's attention probabilities."""
    scores: HeadScoresView
    """The detector scores of every head."""

    def to_json(self) -> dict[str, Any]:
        n_layers, n_heads = self.patterns.shape[:2]
        return {
            "tokens": self.tokens,
            "n_layers": n_layers,
            "n_heads": n_heads,
            "patterns": round_sig(self.patterns),
            "scores": self.scores.to_json(),
        }


@torch.no_grad()
def attention_view(model: HookedModel, prompt: str, scores: HeadScoresView) -> AttentionView:
    """The patterns of every head of ``model`` on ``prompt``, shown with ``scores`` (from :func:`head_scores`)."""
    tokens = prompt_tokens(model, prompt)
    require_attention(model.cfg, "the attention view (attention patterns)")
    _, cache = model.run_with_cache(tokens, names="blocks.*.attn.hook_pattern", stop_early=True)
    patterns = torch.stack([cache["pattern", layer][0] for layer in range(model.cfg.n_layers)]).float().cpu()
    return AttentionView(model.to_str_tokens(tokens[0]), patterns, scores)
