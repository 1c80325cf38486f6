"""GPT-2: learned positions, LayerNorm, fused [q | k | v] projection stored as Conv1D ([in, out])."""

from circuitscope.models.base import Adapter

# Same shape as the other adapters on purpose: one line per module path of this family (see models/base.py).
ADAPTER = Adapter(
    family="gpt2",
    model_types=("gpt2",),
    layers="transformer.h",
    embed="transformer.wte",
    pos_embed="transformer.wpe",
    final_norm="transformer.ln_f",
    unembed="lm_head",
    ln1="ln_1",
    ln2="ln_2",
    attn="attn",
    qkv="attn.c_attn",
    qkv_layout="concat",
    o="attn.c_proj",
    attn_out="attn.c_proj",
    mlp_in="mlp.c_fc",
    mlp_down="mlp.c_proj",
    mlp_out="mlp",
    conv1d=True,
)
