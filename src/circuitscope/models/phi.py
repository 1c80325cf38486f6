"""Phi 1 / 1.5 / 2: one LayerNorm feeding attention and MLP in parallel, partial rotary, an LM head with a bias.

``x + attn(ln x) + mlp(ln x)``: no ``hook_resid_mid``, no ``ln2``. With ``qk_layernorm`` the per-head q/k
LayerNorms run inside attention: ``hook_q``/``hook_k`` are before them, ``hook_rot_q``/``hook_rot_k`` after.
"""

from circuitscope.models.base import Adapter

# Same shape as the other adapters on purpose: one line per module path of this family (see models/base.py).
ADAPTER = Adapter(
    family="phi",
    model_types=("phi",),
    layers="model.layers",
    embed="model.embed_tokens",
    final_norm="model.final_layernorm",
    unembed="lm_head",
    residual="parallel",
    ln1="input_layernorm",
    attn="self_attn",
    q="self_attn.q_proj",
    k="self_attn.k_proj",
    v="self_attn.v_proj",
    o="self_attn.dense",
    attn_out="self_attn.dense",
    mlp_in="mlp.fc1",
    mlp_down="mlp.fc2",
    mlp_out="mlp",
    rotary=True,
)
