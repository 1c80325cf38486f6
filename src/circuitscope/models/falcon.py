"""Falcon: fused grouped q/k/v, rotary, parallel attention and MLP, attention computed in its own code.

transformers' ``FalconAttention.forward`` does not go through the attention registry; the attention hooks
reroute it through ``core/own_attention/falcon.py`` while one of them is active (otherwise the family's own
forward runs, SDPA included). Its fused projection is ``grouped``: per key/value head, that head's queries
then its key and value. That one layout covers the three Falcon configs: multi-query (Falcon-7B, one
key/value head), the new decoder architecture (Falcon-40B, ``num_kv_heads`` groups, two norms ``ln_attn``
/ ``ln_mlp``), and neither (a key/value head per query head). ``parallel_attn`` gives the parallel residual
(``x + attn(ln1 x) + mlp(ln2 x)``; one shared norm in Falcon-7B); without it the block is sequential.
ALiBi configs (Falcon-RW) are refused: their bias is folded into the mask in ways the hooks do not show.
"""

from typing import Any

from circuitscope.models._layouts import base_model, dense_mlp, fused_qkv, own_attention
from circuitscope.models.base import Adapter


def _kv_heads(config: Any) -> dict[str, int]:
    """Key/value heads: ``num_kv_heads`` groups in the new architecture, one under multi-query, else one per head."""
    if config.new_decoder_architecture:
        return {"n_kv_heads": int(config.num_kv_heads)}
    return {"n_kv_heads": 1 if config.multi_query else int(config.num_attention_heads)}


def _refused(config: Any) -> str | None:
    if getattr(config, "alibi", False):
        return (
            "alibi=True (ALiBi position biases, Falcon-RW) is not supported yet: its bias is folded into the "
            "attention mask, so the attention hooks could not show it; use a rotary Falcon (alibi=False)"
        )
    return None


ADAPTER = Adapter(
    family="falcon",
    model_types=("falcon",),
    **base_model("transformer", layers="h", embed="word_embeddings", final_norm="ln_f"),
    unembed="lm_head",
    **fused_qkv(
        "self_attention", norm=("ln_attn", "input_layernorm"), qkv="query_key_value", o="dense", layout="grouped"
    ),
    **own_attention("forward", hooks="falcon"),
    **dense_mlp("mlp", norm=("ln_mlp", "post_attention_layernorm"), up="dense_h_to_4h", down="dense_4h_to_h"),
    mlp_out_in_place=True,
    residual="pre_norm",
    parallel_residual_attr="parallel_attn",
    rotary=True,
    config_names=(("d_mlp", "ffn_hidden_size"),),
    computed_sizes=_kv_heads,
    unsupported=_refused,
)
