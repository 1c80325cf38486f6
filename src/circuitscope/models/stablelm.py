"""StableLM: Llama's layout with LayerNorm and partial rotary; parallel or sequential residual.

``use_parallel_residual=True``: ``x + attn(ln x) + mlp(ln x)`` with the one input norm (the block has no
``post_attention_layernorm``, so no ``ln2``); otherwise the pre-norm wiring. With ``qk_layernorm`` the per-head
q/k LayerNorms run after ``hook_q``/``hook_k``, before ``hook_rot_q``/``hook_rot_k``.
"""

from circuitscope.models.llama import ADAPTER as LLAMA

ADAPTER = LLAMA.derive(family="stablelm", model_types=("stablelm",), parallel_residual_attr="use_parallel_residual")
