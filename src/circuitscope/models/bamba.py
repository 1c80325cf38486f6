"""Bamba: a hybrid of Mamba 2 mixer layers and Llama-style attention layers, each followed by a gated MLP.

``config.layers_block_type`` (its ``layer_types``) says which: ``linear_attention`` for a mixer layer,
``full_attention`` for an attention layer (``attn_layer_indices``). Llama's attention and module names (its MLP
is ``feed_forward``), Mamba 2's mixer.
"""

from circuitscope.models._layouts import gated_mlp, state_space_mixer
from circuitscope.models.llama import ADAPTER as LLAMA

ADAPTER = LLAMA.derive(
    family="bamba",
    model_types=("bamba",),
    final_norm="model.final_layernorm",
    **gated_mlp("feed_forward", norm="pre_ff_layernorm", gate="gate_proj", up="up_proj", down="down_proj"),
    **state_space_mixer("mamba", kind="ssd"),  # Mamba 2's mixer
)
