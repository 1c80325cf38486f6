"""GPT-NeoX (Pythia): LayerNorm, partial rotary, fused per-head qkv, parallel or sequential residual.

Pythia uses the parallel residual (``x + attn(ln1 x) + mlp(ln2 x)``), so it has no
``hook_resid_mid``; a config with ``use_parallel_residual=False`` gets the pre-norm wiring.
"""

from circuitscope.models._layouts import base_model, dense_mlp, fused_qkv
from circuitscope.models.base import Adapter

ADAPTER = Adapter(
    family="gpt_neox",
    model_types=("gpt_neox",),
    **base_model("gpt_neox", layers="layers", embed="embed_in", final_norm="final_layer_norm"),
    unembed=("lm_head", "embed_out"),
    **fused_qkv("attention", norm="input_layernorm", qkv="query_key_value", o="dense", layout="per_head"),
    **dense_mlp("mlp", norm="post_attention_layernorm", up="dense_h_to_4h", down="dense_4h_to_h"),
    residual="pre_norm",
    parallel_residual_attr="use_parallel_residual",
    rotary=True,
)
