"""Granite: Llama's layout with four multipliers outside the modules.

Embeddings times ``embedding_multiplier`` (``hook_embed`` includes it), each sublayer's output times
``residual_multiplier`` before the add (``hook_attn_out``/``hook_result``/``hook_mlp_out`` and ``W_O``/``W_out``
include it), attention scaled by ``attention_multiplier`` (handed to the attention function), logits divided by
``logits_scaling`` (applied with the final logit transform, so logit lens and DLA match the model).
"""

from circuitscope.models.llama import ADAPTER as LLAMA

ADAPTER = LLAMA.derive(
    family="granite",
    model_types=("granite",),
    embed_multiplier_attr="embedding_multiplier",
    residual_multiplier_attr="residual_multiplier",
    logit_divisor_attr="logits_scaling",
)
