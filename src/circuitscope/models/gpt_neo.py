"""GPT-Neo: GPT-2's layout and names, with separate q/k/v (nn.Linear) and attention computed in its own code.

transformers' ``GPTNeoSelfAttention._attn`` does not go through the attention registry: its scores are
unscaled (no 1/sqrt(d_head)) float32 products, and a local layer (``attention_layers`` entry ``local``)
masks all but the latest ``window_size`` keys, which shows as ``sliding_attention`` in
``cfg.layer_types``. The attention hooks reroute ``_attn`` through ``core/own_attention/gpt_neo.py``
while one of them is active; otherwise the family's own method runs.
"""

from circuitscope.models._layouts import own_attention, separate_qkv
from circuitscope.models.gpt2 import ADAPTER as GPT2

ADAPTER = GPT2.derive(
    family="gpt_neo",
    model_types=("gpt_neo",),
    **separate_qkv("attn.attention", norm="ln_1", q="q_proj", k="k_proj", v="v_proj", o="out_proj"),
    **own_attention("_attn", hooks="gpt_neo"),
    conv1d=False,
    layer_types_attr="attention_layers",
    layer_type_names=(("global", "full_attention"), ("local", "sliding_attention")),
    sliding_window_attr="window_size",
)
