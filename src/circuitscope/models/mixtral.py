"""Mixtral: Mistral's attention, and a mixture of experts for the MLP (softmax, top-k, renormalised).

Llama's module names; the MLP is ``MixtralSparseMoeBlock``: a router (``mlp.gate``) and the fused experts
(``mlp.experts``). Its blocks have no single MLP projection, so they have the expert hooks
(``mlp.hook_router_logits``, ``hook_expert_indices``, ``hook_expert_weights``, ``hook_expert_out``) instead of
``mlp.hook_pre``/``hook_post``.
"""

from circuitscope.models._layouts import mixture_of_experts
from circuitscope.models.base import MixtureOfExperts
from circuitscope.models.llama import ADAPTER as LLAMA

EXPERTS = MixtureOfExperts(block="mlp", router="mlp.gate", experts="mlp.experts", n_experts_attr="num_local_experts")
"""Mixtral's experts, which gpt-oss lays out alike (with its own router and routing)."""

ADAPTER = LLAMA.derive(family="mixtral", model_types=("mixtral",), **mixture_of_experts(EXPERTS))
