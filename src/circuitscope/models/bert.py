"""BERT-style encoders (BERT, sentence-transformers such as all-MiniLM-L6-v2).

Post-norm blocks: ``LN(x + attn(x))`` then ``LN(. + mlp(.))``. ``hook_attn_out`` and
``hook_mlp_out`` are the updates those sublayers make to the residual stream
(``LN(x + s) - x``), so ``resid_pre + attn_out == resid_mid`` still holds. There are no
pre-norms, hence no ``ln1``/``ln2`` hooks. ``hook_embed`` and ``hook_pos_embed`` are the
word and position embeddings; ``blocks.0.hook_resid_pre`` is their normed sum (with the
token-type embedding).
"""

from circuitscope.models.base import Adapter

# Same shape as the other adapters on purpose: one line per module path of this family (see models/base.py).
ADAPTER = Adapter(
    family="bert",
    model_types=("bert",),
    layers=("bert.encoder.layer", "encoder.layer"),
    embed=("bert.embeddings.word_embeddings", "embeddings.word_embeddings"),
    pos_embed=("bert.embeddings.position_embeddings", "embeddings.position_embeddings"),
    unembed="cls.predictions.decoder",
    residual="post_norm",
    attn="attention.self",
    q="attention.self.query",
    k="attention.self.key",
    v="attention.self.value",
    o="attention.output.dense",
    attn_out="attention.output",
    attn_out_norm="attention.output.LayerNorm",
    mlp_in="intermediate.dense",
    mlp_down="output.dense",
    mlp_out="output",
    causal=False,
    tokenization="tokenizer",
    masked_lm_classes=("BertForMaskedLM",),
)
