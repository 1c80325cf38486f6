"""GPT-2: learned positions, LayerNorm, fused [q | k | v] projection stored as Conv1D ([in, out])."""

from circuitscope.models._layouts import base_model, dense_mlp, fused_qkv
from circuitscope.models.base import Adapter

ADAPTER = Adapter(
    family="gpt2",
    model_types=("gpt2",),
    **base_model("transformer", layers="h", embed="wte", pos_embed="wpe", final_norm="ln_f"),
    unembed="lm_head",
    **fused_qkv("attn", norm="ln_1", qkv="c_attn", o="c_proj", layout="concat"),
    **dense_mlp("mlp", norm="ln_2", up="c_fc", down="c_proj"),
    conv1d=True,
)
