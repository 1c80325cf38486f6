"""Tiny recipes of the encoders of issue 14 (RoBERTa, DistilBERT, ModernBERT)."""

from __future__ import annotations

from typing import Any

import transformers as tf

from tests.families.recipe import IDS, LLAMA, VOCAB, Tiny, seeded

_BERT: dict[str, Any] = {**LLAMA, "num_attention_heads": 4}
_ALTERNATING: dict[str, Any] = dict(global_attn_every_n_layers=2, local_attention=4)
_MODERNBERT: dict[str, Any] = {**_BERT, **IDS, **_ALTERNATING, "cls_token_id": 1, "sep_token_id": 2}

RECIPES: list[Tiny] = [
    Tiny(
        "roberta",
        seeded(lambda: tf.RobertaForMaskedLM(tf.RobertaConfig(**_BERT, pad_token_id=1))),
        causal=False,
    ),
    Tiny(
        "roberta_encoder",
        seeded(lambda: tf.RobertaModel(tf.RobertaConfig(**_BERT, pad_token_id=1), add_pooling_layer=False)),
        causal=False,
    ),
    Tiny(
        "distilbert",
        seeded(
            lambda: tf.DistilBertForMaskedLM(
                tf.DistilBertConfig(
                    vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=48, max_position_embeddings=64
                )
            )
        ),
        causal=False,
    ),
    Tiny(  # layer 0 global, layer 1 local (keys within 2 on either side); layer 0 has no attention norm (Identity)
        "modernbert",
        seeded(lambda: tf.ModernBertForMaskedLM(tf.ModernBertConfig(**_MODERNBERT))),
        causal=False,
        sliding_window=2,
    ),
    Tiny(
        "modernbert_encoder",
        seeded(lambda: tf.ModernBertModel(tf.ModernBertConfig(**_MODERNBERT))),
        causal=False,
        sliding_window=2,
    ),
]
