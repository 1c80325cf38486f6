"""Qwen2-MoE: Qwen2's attention; routed experts plus a shared expert behind a sigmoid gate.

The MoE block (``mlp``) adds ``sigmoid(mlp.shared_expert_gate(x)) * mlp.shared_expert(x)`` to the routed
experts' weighted sum; that gated term is ``mlp.hook_shared_expert_out``. The router renormalises its top-k
probabilities only when ``norm_topk_prob`` is set. Layers listed in ``mlp_only_layers`` (or skipped by
``decoder_sparse_step``) keep a dense MLP under Llama's names and get the dense MLP hooks.
"""

from dataclasses import replace

from circuitscope.models.llama import ADAPTER as LLAMA
from circuitscope.models.qwen3_moe import EXPERTS

ADAPTER = LLAMA.derive(
    family="qwen2_moe",
    model_types=("qwen2_moe",),
    experts=replace(EXPERTS, shared_expert="mlp.shared_expert", shared_expert_gate="mlp.shared_expert_gate"),
)
