"""DistilBERT: a post-norm encoder whose LayerNorms are called on the sum ``x + sublayer(x)``.

A block computes ``h = sa_layer_norm(attention(x) + x)`` then ``output_layer_norm(ffn(h) + h)``: unlike
BERT's ``BertSelfOutput(update, residual)``, the norm gets the sum alone (``post_norm_input="sum"``), so the
residual it adds is read where it enters (the block's input, the MLP's input). The hooks report the
updates ``LN(x + s) - x`` as for BERT, so the residual stream still decomposes exactly. ``W_U`` is
``vocab_projector``: ``vocab_transform``, the activation and ``vocab_layer_norm`` come before it and there
is no final norm, so the analyses that read logits linearly off the residual stream refuse the model.
"""

from circuitscope.models._layouts import dense_mlp, encoder, post_norm_attention
from circuitscope.models.bert import ADAPTER as BERT
from circuitscope.models.bert import bert_base_model

ADAPTER = BERT.derive(
    family="distilbert",
    model_types=("distilbert",),
    **bert_base_model("distilbert", layers="transformer.layer"),
    unembed="vocab_projector",
    **encoder("DistilBertForMaskedLM"),
    post_norm_input="sum",
    **post_norm_attention("attention", q="q_lin", k="k_lin", v="v_lin", o="out_lin", norm="sa_layer_norm"),
    **dense_mlp("ffn", norm=None, up="lin1", down="lin2", out="output_layer_norm"),
    config_names=(("d_mlp", "hidden_dim"),),
)
