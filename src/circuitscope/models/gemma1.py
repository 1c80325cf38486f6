"""Gemma 1: Llama's block layout with scaled embeddings and (1 + w) RMSNorm."""

from circuitscope.models.base import Adapter

ADAPTER = Adapter(
    family="gemma",
    model_types=("gemma",),
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
    embed_scale_buffer="embed_scale",
)
