"""Qwen3-MoE: Qwen3's attention (q/k norms per head); routed experts, no shared expert.

The router renormalises its top-k probabilities only when ``norm_topk_prob`` is set. Layers in
``mlp_only_layers`` keep a dense MLP under Llama's names and get the dense MLP hooks.
"""

from circuitscope.models.base import MixtureOfExperts
from circuitscope.models.llama import ADAPTER as LLAMA

EXPERTS = MixtureOfExperts(
    block="mlp",
    router="mlp.gate",
    experts="mlp.experts",
    n_experts_attr="num_experts",
    renormalize_attr="norm_topk_prob",
)
"""The routed experts as Qwen2/3-MoE and OLMoE lay them out."""

ADAPTER = LLAMA.derive(family="qwen3_moe", model_types=("qwen3_moe",), experts=EXPERTS)
