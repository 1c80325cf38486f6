"""GPT-Neo: GPT-2's pre-norm layout with separate q/k/v, and attention computed in the family's own code.

transformers' ``GPTNeoSelfAttention._attn`` does not go through the attention registry: its scores are
unscaled (no 1/sqrt(d_head)) float32 products, and a local layer (``attention_layers`` entry ``local``)
masks all but the latest ``window_size`` keys, which shows as ``sliding_attention`` in
``cfg.layer_types``. The attention hooks reroute ``_attn`` through ``core/own_attention/gpt_neo.py``
while one of them is active; otherwise the family's own method runs.
"""

from circuitscope.models.base import Adapter

# Same shape as the other adapters on purpose: one line per module path of this family (see models/base.py).
ADAPTER = Adapter(
    family="gpt_neo",
    model_types=("gpt_neo",),
    layers="transformer.h",
    embed="transformer.wte",
    pos_embed="transformer.wpe",
    final_norm="transformer.ln_f",
    unembed="lm_head",
    ln1="ln_1",
    ln2="ln_2",
    attn="attn.attention",
    q="attn.attention.q_proj",
    k="attn.attention.k_proj",
    v="attn.attention.v_proj",
    o="attn.attention.out_proj",
    attn_out="attn.attention.out_proj",
    mlp_in="mlp.c_fc",
    mlp_down="mlp.c_proj",
    mlp_out="mlp",
    attn_method="_attn",
    attn_hooks="gpt_neo",
    layer_types_attr="attention_layers",
    layer_type_names=(("global", "full_attention"), ("local", "sliding_attention")),
    sliding_window_attr="window_size",
)
