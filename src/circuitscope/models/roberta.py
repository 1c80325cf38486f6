"""RoBERTa: BERT's post-norm encoder under ``roberta.``, its masked-LM head ``lm_head``.

Everything BERT's adapter says holds (``models/bert.py``). Position ids start at ``padding_idx + 1``
(RoBERTa's pad id is 1, so at row 2 of the table): ``W_pos`` starts there, and ``hook_pos_embed`` is
the embedding of each token's own position id ([batch pos d_model], since padding tokens keep the pad row).
As for BERT, ``W_U`` is ``lm_head.decoder``: the head's dense, GELU and LayerNorm come before it, and the
model has no final norm, so the analyses that read logits linearly off the residual stream refuse it.
"""

from circuitscope.models._layouts import encoder
from circuitscope.models.base import Adapter
from circuitscope.models.bert import ADAPTER as BERT
from circuitscope.models.bert import bert_base_model

ADAPTER: Adapter = BERT.derive(
    family="roberta",
    model_types=("roberta",),
    **bert_base_model("roberta"),
    pos_embed_offset=2,
    unembed="lm_head.decoder",
    **encoder("RobertaForMaskedLM"),
)
