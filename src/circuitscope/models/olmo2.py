"""OLMo 2 and OLMo 3: no input norms; each sublayer's output is RMS-normed before the residual add.

``x + norm_a(attn(x))``, then ``+ norm_m(mlp(.))``: attention and the MLP read the residual stream itself (no
``ln1``/``ln2`` hooks); ``hook_attn_out``/``hook_mlp_out`` are the normed outputs, what enters the stream.
q_norm/k_norm over the full width run after ``hook_q``/``hook_k``. OLMo 3 adds sliding-window layers.
"""

from circuitscope.models._layouts import output_norms
from circuitscope.models.llama import ADAPTER as LLAMA

ADAPTER = LLAMA.derive(
    family="olmo2",
    model_types=("olmo2", "olmo3"),
    ln1=None,
    ln2=None,
    **output_norms(attn="post_attention_layernorm", mlp="post_feedforward_layernorm"),
)
