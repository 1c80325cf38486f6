"""Gemma 2 and 3 (scaled embeddings, (1 + w) RMSNorm, rotary, GQA/MQA, sliding-window layers).

Gemma 2 and 3 norm the attention and MLP outputs again before the residual add
(``post_attention_layernorm`` / ``post_feedforward_layernorm``); ``hook_attn_out`` and
``hook_mlp_out`` are those normed outputs, i.e. exactly what enters the residual stream.
Gemma 1 has no such norms and has its own adapter file, ``gemma1.py``.
"""

from circuitscope.models.base import Adapter

_TEXT = ("model.language_model", "model")

ADAPTER = Adapter(
    family="gemma",
    model_types=("gemma2", "gemma3", "gemma3_text"),
    layers=tuple(f"{p}.layers" for p in _TEXT),
    embed=tuple(f"{p}.embed_tokens" for p in _TEXT),
    final_norm=tuple(f"{p}.norm" for p in _TEXT),
    unembed="lm_head",
    ln1="input_layernorm",
    ln2="pre_feedforward_layernorm",
    attn="self_attn",
    q="self_attn.q_proj",
    k="self_attn.k_proj",
    v="self_attn.v_proj",
    o="self_attn.o_proj",
    attn_out="post_attention_layernorm",
    attn_out_norm="post_attention_layernorm",
    mlp_in="mlp.gate_proj",
    mlp_in_linear="mlp.up_proj",
    mlp_down="mlp.down_proj",
    mlp_out="post_feedforward_layernorm",
    mlp_out_norm="post_feedforward_layernorm",
    rotary=True,
    final_softcap_attr="final_logit_softcapping",
    embed_scale_buffer="embed_scale",
)
