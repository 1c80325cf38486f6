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

from circuitscope.models.base import Adapter

# Same shape as the other adapters on purpose: one line per module path of this family (see models/base.py).
ADAPTER = Adapter(
    family="modernbert",
    model_types=("modernbert",),
    layers=("model.layers", "layers"),
    embed=("model.embeddings.tok_embeddings", "embeddings.tok_embeddings"),
    final_norm=("model.final_norm", "final_norm"),
    unembed="decoder",
    unembed_head="head",
    ln1="attn_norm",
    ln2="mlp_norm",
    attn="attn",
    qkv="attn.Wqkv",
    qkv_layout="concat",
    o="attn.Wo",
    attn_out="attn.Wo",
    mlp_in="mlp.Wi",
    mlp_gate_up="mlp.Wi",
    mlp_down="mlp.Wo",
    mlp_out="mlp",
    rotary=True,
    causal=False,
    tokenization="tokenizer",
    masked_lm_classes=("ModernBertForMaskedLM",),
)
