"""GPT-NeoX (Pythia): LayerNorm, partial rotary, fused per-head qkv, parallel or sequential residual.

Pythia uses the parallel residual (``x + attn(ln1 x) + mlp(ln2 x)``), so it has no
``hook_resid_mid``; a config with ``use_parallel_residual=False`` gets the pre-norm wiring.
"""

from circuitscope.models.base import Adapter

# Same shape as the other adapters on purpose: one line per module path of this family (see models/base.py).
ADAPTER = Adapter(
    family="gpt_neox",
    model_types=("gpt_neox",),
    layers="gpt_neox.layers",
    embed="gpt_neox.embed_in",
    final_norm="gpt_neox.final_layer_norm",
    unembed=("lm_head", "embed_out"),
    residual="pre_norm",
    parallel_residual_attr="use_parallel_residual",
    ln1="input_layernorm",
    ln2="post_attention_layernorm",
    attn="attention",
    qkv="attention.query_key_value",
    qkv_layout="per_head",
    o="attention.dense",
    attn_out="attention.dense",
    mlp_in="mlp.dense_h_to_4h",
    mlp_down="mlp.dense_4h_to_h",
    mlp_out="mlp",
    rotary=True,
)
