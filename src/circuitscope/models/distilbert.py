"""DistilBERT: a post-norm encoder whose LayerNorms are called on the sum ``x + sublayer(x)``.

A block computes ``h = sa_layer_norm(attention(x) + x)`` then ``output_layer_norm(ffn(h) + h)``: unlike
BERT's ``BertSelfOutput(update, residual)``, the norm gets the sum alone (``post_norm_input="sum"``), so the
residual it adds is read where it enters (the block's input, the MLP's input). The hooks report the
updates ``LN(x + s) - x`` as for BERT, so the residual stream still decomposes exactly. ``W_U`` is
``vocab_projector``: ``vocab_transform``, the activation and ``vocab_layer_norm`` come before it and there
is no final norm, so the analyses that read logits linearly off the residual stream refuse the model.
"""

from circuitscope.models.base import Adapter

# Same shape as the other adapters on purpose: one line per module path of this family (see models/base.py).
ADAPTER = Adapter(
    family="distilbert",
    model_types=("distilbert",),
    layers=("distilbert.transformer.layer", "transformer.layer"),
    embed=("distilbert.embeddings.word_embeddings", "embeddings.word_embeddings"),
    pos_embed=("distilbert.embeddings.position_embeddings", "embeddings.position_embeddings"),
    unembed="vocab_projector",
    residual="post_norm",
    post_norm_input="sum",
    attn="attention",
    q="attention.q_lin",
    k="attention.k_lin",
    v="attention.v_lin",
    o="attention.out_lin",
    attn_out="sa_layer_norm",
    attn_out_norm="sa_layer_norm",
    mlp_in="ffn.lin1",
    mlp_down="ffn.lin2",
    mlp_out="output_layer_norm",
    config_names=(("d_mlp", "hidden_dim"),),
    causal=False,
    tokenization="tokenizer",
    masked_lm_classes=("DistilBertForMaskedLM",),
)
