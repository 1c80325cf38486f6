"""Bamba: a hybrid of Mamba 2 mixer layers and Llama-style attention layers, each followed by a gated MLP.

``config.layers_block_type`` (its ``layer_types``) says which: ``linear_attention`` for a mixer layer,
``full_attention`` for an attention layer (``attn_layer_indices``).
"""

from circuitscope.models.base import Adapter

# Same shape as the other adapters on purpose: one line per module path of this family (see models/base.py).
ADAPTER = Adapter(
    family="bamba",
    model_types=("bamba",),
    layers="model.layers",
    embed="model.embed_tokens",
    final_norm="model.final_layernorm",
    unembed="lm_head",
    ln1="input_layernorm",
    ln2="pre_ff_layernorm",
    attn="self_attn",
    q="self_attn.q_proj",
    k="self_attn.k_proj",
    v="self_attn.v_proj",
    o="self_attn.o_proj",
    attn_out="self_attn.o_proj",
    mlp_in="feed_forward.gate_proj",
    mlp_in_linear="feed_forward.up_proj",
    mlp_down="feed_forward.down_proj",
    mlp_out="feed_forward",
    rotary=True,
    mixer="mamba",
    mixer_kind="ssd",
)
