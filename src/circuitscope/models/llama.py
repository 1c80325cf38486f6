"""Llama family: Llama, Mistral, Qwen2, Qwen3 (RMSNorm, rotary, gated MLP, grouped-query attention)."""

from circuitscope.models.base import Adapter

# Same shape as the other adapters on purpose: one line per module path of this family (see models/base.py).
ADAPTER = Adapter(
    family="llama",
    model_types=("llama", "mistral", "qwen2", "qwen3"),
    layers="model.layers",
    embed="model.embed_tokens",
    final_norm="model.norm",
    unembed="lm_head",
    ln1="input_layernorm",
    ln2="post_attention_layernorm",
    attn="self_attn",
    q="self_attn.q_proj",
    k="self_attn.k_proj",
    v="self_attn.v_proj",
    o="self_attn.o_proj",
    attn_out="self_attn.o_proj",
    mlp_in="mlp.gate_proj",
    mlp_in_linear="mlp.up_proj",
    mlp_down="mlp.down_proj",
    mlp_out="mlp",
    rotary=True,
)
