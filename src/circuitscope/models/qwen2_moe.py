"""Qwen2-MoE: Qwen2's attention; routed experts plus a shared expert behind a sigmoid gate.

The MoE block (``mlp``) adds ``sigmoid(mlp.shared_expert_gate(x)) * mlp.shared_expert(x)`` to the routed
experts' weighted sum; that gated term is ``mlp.hook_shared_expert_out``. The router renormalises its top-k
probabilities only when ``norm_topk_prob`` is set. Layers listed in ``mlp_only_layers`` (or skipped by
``decoder_sparse_step``) keep a dense MLP under Llama's names and get the dense MLP hooks.
"""

from circuitscope.models.base import MixtureOfExperts
from circuitscope.models.llama import ADAPTER as LLAMA

ADAPTER = LLAMA.derive(
    family="qwen2_moe",
    model_types=("qwen2_moe",),
    experts=MixtureOfExperts(
        block="mlp",
        router="mlp.gate",
        experts="mlp.experts",
        n_experts_attr="num_experts",
        renormalize_attr="norm_topk_prob",
        shared_expert="mlp.shared_expert",
        shared_expert_gate="mlp.shared_expert_gate",
    ),
)
