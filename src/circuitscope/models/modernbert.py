"""ModernBERT: a pre-norm encoder with rotary, fused q/k/v and GLU projections, alternating local attention.

Layer 0 has no attention norm (``attn_norm`` is ``nn.Identity``: its ``ln1.hook_normalized`` is the
residual stream itself; the embeddings are normed already, so ``blocks.0.hook_resid_pre`` is the normed
embedding). ``Wqkv`` is [q | k | v]; ``Wi`` is [activated half | linear half] (``mlp_gate_up``: ``hook_pre``,
``hook_pre_linear``). Every ``global_attn_every_n_layers``-th layer is global, the others local: a query
sees the keys within ``cfg.sliding_window`` (half of ``local_attention``) on either side.

The masked-LM head: ``final_norm``, then ``head`` (dense, activation, LayerNorm), then ``decoder``.
``W_U`` is ``decoder``'s weight ([d_model, d_vocab], reading the head's output, not the residual stream).
Decoding a residual (logit lens, attribution) goes through the head; the analyses that read logits
linearly off the residual stream (direct logit attribution, folding the final norm) refuse the model.
"""

from circuitscope.models._layouts import base_model, encoder, fused_gated_mlp, fused_qkv
from circuitscope.models.base import Adapter

ADAPTER = Adapter(
    family="modernbert",
    model_types=("modernbert",),
    **base_model("model", layers="layers", embed="embeddings.tok_embeddings", final_norm="final_norm", bare=True),
    unembed="decoder",
    unembed_head="head",
    **encoder("ModernBertForMaskedLM"),
    **fused_qkv("attn", norm="attn_norm", qkv="Wqkv", o="Wo", layout="concat"),
    **fused_gated_mlp("mlp", norm="mlp_norm", gate_up="Wi", down="Wo"),
    rotary=True,
)
