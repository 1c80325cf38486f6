"""Llama family: Llama, Mistral, Qwen2, Qwen3 (RMSNorm, rotary, gated MLP, grouped-query attention)."""

from circuitscope.models._layouts import base_model, gated_mlp, separate_qkv
from circuitscope.models.base import Adapter

ADAPTER = Adapter(
    family="llama",
    model_types=("llama", "mistral", "qwen2", "qwen3"),
    **base_model("model", layers="layers", embed="embed_tokens", final_norm="norm"),
    unembed="lm_head",
    **separate_qkv("self_attn", norm="input_layernorm", q="q_proj", k="k_proj", v="v_proj", o="o_proj"),
    **gated_mlp("mlp", norm="post_attention_layernorm", gate="gate_proj", up="up_proj", down="down_proj"),
    rotary=True,
)
"""Llama's module names, which most decoder families share: they derive their adapters from this one."""
