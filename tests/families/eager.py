"""Tiny recipes of the dense decoders that compute attention in their own code, outside transformers' registry.

GPT-Neo and Falcon (see circuitscope/core/own_attention).
"""

from __future__ import annotations

from typing import Any

import transformers as tf

from tests.families.recipe import SIZES, VOCAB, Tiny, seeded

_FALCON: dict[str, Any] = {**SIZES, "num_attention_heads": 4}
_NEO: dict[str, Any] = dict(
    vocab_size=VOCAB, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, max_position_embeddings=64
)
_LOCAL: dict[str, Any] = dict(attention_types=[[["local", "global"], 1]], window_size=4)  # layer 0 local: 4 keys

RECIPES: list[Tiny] = [
    Tiny(
        "gpt_neo",
        seeded(lambda: tf.GPTNeoForCausalLM(tf.GPTNeoConfig(**_NEO, **_LOCAL, bos_token_id=0, eos_token_id=0))),
        sliding_window=4,
    ),
    Tiny(  # Falcon-7B's layout: multi-query (one key/value head), parallel attention and MLP under one norm
        "falcon",
        seeded(lambda: tf.FalconForCausalLM(tf.FalconConfig(**_FALCON, multi_query=True, parallel_attn=True))),
    ),
    Tiny(  # Falcon-40B's new decoder architecture: 2 key/value groups, two norms (ln_attn, ln_mlp), biases
        "falcon_new_arch",
        seeded(
            lambda: tf.FalconForCausalLM(
                tf.FalconConfig(**_FALCON, new_decoder_architecture=True, num_kv_heads=2, parallel_attn=True, bias=True)
            )
        ),
    ),
    Tiny(  # neither: a key/value head per query head, sequential residual with two norms
        "falcon_sequential",
        seeded(lambda: tf.FalconForCausalLM(tf.FalconConfig(**_FALCON, multi_query=False, parallel_attn=False))),
    ),
]
