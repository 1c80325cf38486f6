"""BERT-style encoders (BERT, sentence-transformers such as all-MiniLM-L6-v2).

Post-norm blocks: ``LN(x + attn(x))`` then ``LN(. + mlp(.))``. ``hook_attn_out`` and
``hook_mlp_out`` are the updates those sublayers make to the residual stream
(``LN(x + s) - x``), so ``resid_pre + attn_out == resid_mid`` still holds. There are no
pre-norms, hence no ``ln1``/``ln2`` hooks. ``hook_embed`` and ``hook_pos_embed`` are the
word and position embeddings; ``blocks.0.hook_resid_pre`` is their normed sum (with the
token-type embedding).
"""

from circuitscope.models._layouts import BaseModelPaths, base_model, dense_mlp, encoder
from circuitscope.models.base import Adapter


def bert_base_model(prefix: str, layers: str = "encoder.layer") -> BaseModelPaths:
    """BERT's base model under ``prefix`` (``bert``; RoBERTa's ``roberta``), or bare (``BertModel``)."""
    return base_model(
        prefix, layers=layers, embed="embeddings.word_embeddings", pos_embed="embeddings.position_embeddings", bare=True
    )


ADAPTER = Adapter(
    family="bert",
    model_types=("bert",),
    **bert_base_model("bert"),
    unembed="cls.predictions.decoder",
    **encoder("BertForMaskedLM"),
    residual="post_norm",
    attn="attention.self",
    q="attention.self.query",
    k="attention.self.key",
    v="attention.self.value",
    o="attention.output.dense",
    attn_out="attention.output",  # BertSelfOutput: dense, then LayerNorm(. + x)
    attn_out_norm="attention.output.LayerNorm",
    **dense_mlp("", norm=None, up="intermediate.dense", down="output.dense", out="output"),
)
