"""Cohere (Command R) and Cohere 2: one bias-free LayerNorm feeding attention and MLP in parallel; scaled logits.

``x + attn(ln x) + mlp(ln x)`` (no ``ln2``, no ``hook_resid_mid``); the logits are the unembedding times
``logit_scale``, applied with the final logit transform so logit lens and DLA match the model. Cohere 2 adds
sliding-window layers.
"""

from circuitscope.models.llama import ADAPTER as LLAMA

ADAPTER = LLAMA.derive(
    family="cohere",
    model_types=("cohere", "cohere2"),
    residual="parallel",
    ln2=None,
    logit_multiplier_attr="logit_scale",
)
