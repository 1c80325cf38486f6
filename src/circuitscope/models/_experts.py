"""The declarative description of a mixture-of-experts MLP: where its router and experts live.

An adapter whose blocks route each token to a few experts names them in ``Adapter.experts``
(paths relative to one block). ``circuitscope.core.moe`` turns that into the hook points
``mlp.hook_router_logits``, ``mlp.hook_expert_indices``, ``mlp.hook_expert_weights``,
``mlp.hook_expert_out`` (and ``mlp.hook_shared_expert_out``), on the family's own modules.

The modules must follow transformers 5's fused layout: the router returns
``(logits [tokens, expert], top-k weights [tokens, k], top-k indices [tokens, k])`` and the experts
module is called as ``experts(hidden [tokens, d_model], indices, weights)`` and returns the weighted
sum ``[tokens, d_model]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

__all__ = ["MixtureOfExperts", "Routing"]

Routing = Literal["softmax_topk", "topk_softmax"]
"""How the router turns its logits into the top-k weights. ``softmax_topk``: a softmax over every expert,
the k largest probabilities kept (and renormalised to sum to 1 where the family does, see
``renormalize_attr``): Mixtral, Qwen2/3-MoE, OLMoE. ``topk_softmax``: the k largest logits, then a softmax
over those k only: gpt-oss."""


@dataclass(frozen=True)
class MixtureOfExperts:
    """Where one family's mixture-of-experts block keeps its router and experts."""

    block: str
    """The MoE block (the whole MLP sublayer): its input is ``[batch, pos, d_model]``."""
    router: str
    """The router module, returning ``(logits, top-k weights, top-k indices)``. A block without it is a
    dense MLP block (Qwen2-MoE's ``mlp_only_layers``) and gets the dense MLP hooks instead."""
    experts: str
    """The fused experts module, ``experts(hidden, indices, weights) -> sum_k weights_k * expert_k(hidden)``."""
    n_experts_attr: str
    """Config attribute holding the number of experts."""
    routing: Routing = "softmax_topk"
    """How the top-k weights come from the logits (see :data:`Routing`)."""
    top_k_attr: str = "num_experts_per_tok"
    """Config attribute holding k, the experts each token is sent to."""
    renormalize_attr: str | None = None
    """Under ``softmax_topk``: the config flag saying whether the k kept probabilities are renormalised to
    sum to 1 (Qwen2/3-MoE and OLMoE's ``norm_topk_prob``); None: always renormalised (Mixtral)."""
    shared_expert: str | None = None
    """A shared expert every token goes through (Qwen2-MoE), added to the routed experts' sum; None if absent."""
    shared_expert_gate: str | None = None
    """Linear map to one logit per token whose sigmoid scales the shared expert's output; None if ungated."""

    def __post_init__(self) -> None:
        if self.routing not in get_args(Routing):
            raise ValueError(f"routing must be one of {get_args(Routing)}, got {self.routing!r}")
        if self.shared_expert_gate is not None and self.shared_expert is None:
            raise ValueError("shared_expert_gate gates a shared expert: name shared_expert too")
