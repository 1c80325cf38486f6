"""Gemma 2 and 3 (scaled embeddings, (1 + w) RMSNorm, rotary, GQA/MQA, sliding-window layers).

Llama's module names, with two more norms: Gemma 2 and 3 norm the attention and MLP outputs
again before the residual add (``post_attention_layernorm`` / ``post_feedforward_layernorm``);
``hook_attn_out`` and ``hook_mlp_out`` are those normed outputs, i.e. exactly what enters the
residual stream. Gemma 3's multimodal models keep the text model under ``model.language_model``.
Gemma 1 has no such norms and has its own adapter file, ``gemma1.py``.
"""

from circuitscope.models._layouts import output_norms
from circuitscope.models.llama import ADAPTER as LLAMA

_TEXT = ("model.language_model", "model")

ADAPTER = LLAMA.derive(
    family="gemma",
    model_types=("gemma2", "gemma3", "gemma3_text"),
    layers=tuple(f"{p}.layers" for p in _TEXT),
    embed=tuple(f"{p}.embed_tokens" for p in _TEXT),
    final_norm=tuple(f"{p}.norm" for p in _TEXT),
    ln2="pre_feedforward_layernorm",
    **output_norms(attn="post_attention_layernorm", mlp="post_feedforward_layernorm"),
    final_softcap_attr="final_logit_softcapping",
    embed_scale_buffer="embed_scale",
)
