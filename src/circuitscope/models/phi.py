"""Phi 1 / 1.5 / 2: one LayerNorm feeding attention and MLP in parallel, partial rotary, an LM head with a bias.

Llama's model-level and attention names (its output projection is ``dense``), a plain MLP ``fc1``/``fc2``.
``x + attn(ln x) + mlp(ln x)``: no ``hook_resid_mid``, no ``ln2``. With ``qk_layernorm`` the per-head q/k
LayerNorms run inside attention: ``hook_q``/``hook_k`` are before them, ``hook_rot_q``/``hook_rot_k`` after.
"""

from circuitscope.models._layouts import dense_mlp, separate_qkv
from circuitscope.models.llama import ADAPTER as LLAMA

ADAPTER = LLAMA.derive(
    family="phi",
    model_types=("phi",),
    final_norm="model.final_layernorm",
    residual="parallel",
    **separate_qkv("self_attn", norm="input_layernorm", q="q_proj", k="k_proj", v="v_proj", o="dense"),
    **dense_mlp("mlp", norm=None, up="fc1", down="fc2"),
)
