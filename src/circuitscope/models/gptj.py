"""GPT-J: one LayerNorm feeding attention and MLP in parallel, partial interleaved rotary, untied LM head.

GPT-2's model-level names and ``ln_1``; rotary instead of learned positions, nn.Linear projections.
``x + attn(ln_1 x) + mlp(ln_1 x)``: no ``hook_resid_mid`` and no ``ln2`` (``ln1`` feeds both sublayers).
"""

from circuitscope.models._layouts import dense_mlp, separate_qkv
from circuitscope.models.gpt2 import ADAPTER as GPT2

ADAPTER = GPT2.derive(
    family="gptj",
    model_types=("gptj",),
    pos_embed=None,
    residual="parallel",
    **separate_qkv("attn", norm="ln_1", q="q_proj", k="k_proj", v="v_proj", o="out_proj"),
    **dense_mlp("mlp", norm=None, up="fc_in", down="fc_out"),
    conv1d=False,
    rotary=True,
)
