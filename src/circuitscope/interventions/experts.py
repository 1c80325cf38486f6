"""Ablating one expert of a mixture-of-experts layer: an intervention on the expert hooks.

Two ways, chosen by ``mode``:

- ``zero``: wherever a token chose the expert, its weight is set to 0 and the other chosen experts keep
  their weights (no renormalisation): the layer's output loses exactly that expert's term, as if the
  expert's output were zero. The routing is otherwise unchanged.
- ``drop``: the expert's router logit is set to -inf, so the router (the family's own rule, recomputed by
  ``mlp.hook_router_logits``) picks the next-best expert in its place and normalises the top-k weights as
  the family does (renormalised to sum to 1 for Mixtral, gpt-oss, and where ``norm_topk_prob`` is set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import torch

from circuitscope.core.hook_points import HookFn, HookPoint
from circuitscope.core.moe import expert_layout
from circuitscope.errors import OptionError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["AblationMode", "ExpertAblation"]

AblationMode = Literal["zero", "drop"]
"""``zero``: the expert's weight set to 0 where chosen; ``drop``: removed from the top-k and re-routed."""


@dataclass(frozen=True)
class ExpertAblation:
    """Ablate expert ``expert`` of MoE layer ``layer`` at every position (see the module docstring)."""

    layer: int
    """The MoE layer."""
    expert: int
    """The expert's index in that layer."""
    mode: AblationMode = "zero"
    """``zero`` (weight set to 0, no renormalisation) or ``drop`` (re-routed to the next-best expert)."""

    def __post_init__(self) -> None:
        if self.mode not in get_args(AblationMode):
            raise OptionError(f"mode must be one of {get_args(AblationMode)}, got {self.mode!r}")

    def check(self, model: HookedModel) -> None:
        expert_layout(model).check(self.layer, self.expert)

    def hooks(self, model: HookedModel) -> list[tuple[str, HookFn]]:
        pre = f"blocks.{self.layer}.mlp."
        expert = self.expert
        if self.mode == "drop":

            def drop(logits: torch.Tensor, hook: HookPoint) -> torch.Tensor:
                logits = logits.clone()
                logits[..., expert] = float("-inf")
                return logits

            return [(pre + "hook_router_logits", drop)]
        chosen: list[torch.Tensor] = []  # the indices of the current pass: the router hands them over first

        def remember(index: torch.Tensor, hook: HookPoint) -> None:
            chosen[:] = [index]

        def zero(weights: torch.Tensor, hook: HookPoint) -> torch.Tensor:
            return weights.masked_fill(chosen[0] == expert, 0.0)

        return [(pre + "hook_expert_indices", remember), (pre + "hook_expert_weights", zero)]
