"""Phi-3: Llama's layout with a fused [q | k | v] projection (grouped-query sizes) and a fused [gate | up] MLP.

``qkv_proj`` is split by size (q: n_heads * d_head, k and v: n_kv_heads * d_head each); the first half of
``gate_up_proj`` is ``mlp.hook_pre`` (the activated gate), the second ``mlp.hook_pre_linear``.
"""

from circuitscope.models.llama import ADAPTER as LLAMA

ADAPTER = LLAMA.derive(
    family="phi3",
    model_types=("phi3",),
    q=None,
    k=None,
    v=None,
    qkv="self_attn.qkv_proj",
    qkv_layout="concat",
    mlp_in="mlp.gate_up_proj",
    mlp_gate_up="mlp.gate_up_proj",
    mlp_in_linear=None,
)
