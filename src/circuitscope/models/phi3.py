"""Phi-3: Llama's layout with a fused [q | k | v] projection (grouped-query sizes) and a fused [gate | up] MLP.

``qkv_proj`` is split by size (q: n_heads * d_head, k and v: n_kv_heads * d_head each); the first half of
``gate_up_proj`` is ``mlp.hook_pre`` (the activated gate), the second ``mlp.hook_pre_linear``.
"""

from circuitscope.models._layouts import fused_gated_mlp, fused_qkv
from circuitscope.models.llama import ADAPTER as LLAMA

ADAPTER = LLAMA.derive(
    family="phi3",
    model_types=("phi3",),
    **fused_qkv("self_attn", norm="input_layernorm", qkv="qkv_proj", o="o_proj", layout="concat"),
    **fused_gated_mlp("mlp", norm="post_attention_layernorm", gate_up="gate_up_proj", down="down_proj"),
)
