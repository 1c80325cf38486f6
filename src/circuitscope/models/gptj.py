"""GPT-J: one LayerNorm feeding attention and MLP in parallel, partial interleaved rotary, untied LM head.

``x + attn(ln_1 x) + mlp(ln_1 x)``: no ``hook_resid_mid`` and no ``ln2`` (``ln1`` feeds both sublayers).
"""

from circuitscope.models.base import Adapter

# Same shape as the other adapters on purpose: one line per module path of this family (see models/base.py).
ADAPTER = Adapter(
    family="gptj",
    model_types=("gptj",),
    layers="transformer.h",
    embed="transformer.wte",
    final_norm="transformer.ln_f",
    unembed="lm_head",
    residual="parallel",
    ln1="ln_1",
    attn="attn",
    q="attn.q_proj",
    k="attn.k_proj",
    v="attn.v_proj",
    o="attn.out_proj",
    attn_out="attn.out_proj",
    mlp_in="mlp.fc_in",
    mlp_down="mlp.fc_out",
    mlp_out="mlp",
    rotary=True,
)
