"""Tiny recipes of the dense decoders of issue 14.

OPT, GPT-J, Phi, Phi-3, OLMo, OLMo 2/3, StableLM, Cohere 1/2, Granite, SmolLM3.

Each is d_model 32, 2 layers, 4 heads over VOCAB; a second recipe where a config flag changes the wiring
(OPT: its pre-norm blocks are its only supported wiring; StableLM parallel and sequential; Phi with
``qk_layernorm``; OLMo with ``clip_qkv``) or where the same wiring comes with sliding-window layers (OLMo 3, Cohere 2).
"""

from __future__ import annotations

from typing import Any

import transformers as tf

from tests.families.recipe import IDS, LLAMA, SIZES, VOCAB, Tiny, seeded

_GQA: dict[str, Any] = {**LLAMA, **IDS, "num_attention_heads": 4, "num_key_value_heads": 2}
_GRANITE: dict[str, Any] = dict(
    embedding_multiplier=3.0, residual_multiplier=0.3, attention_multiplier=0.2, logits_scaling=1.7
)
_PARTIAL = {"rope_theta": 10000.0, "partial_rotary_factor": 0.5, "rope_type": "default"}
_SLIDING: dict[str, Any] = dict(sliding_window=4, layer_types=["sliding_attention", "full_attention"])

RECIPES: list[Tiny] = [
    Tiny(
        "opt",
        seeded(
            lambda: tf.OPTForCausalLM(
                tf.OPTConfig(**SIZES, **IDS, word_embed_proj_dim=32, ffn_dim=48, num_attention_heads=4)
            )
        ),
    ),
    Tiny(
        "gptj",
        seeded(
            lambda: tf.GPTJForCausalLM(
                tf.GPTJConfig(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64, rotary_dim=4, **IDS)
            )
        ),
    ),
    Tiny(
        "phi",
        seeded(lambda: tf.PhiForCausalLM(tf.PhiConfig(**_GQA, rope_parameters=_PARTIAL))),
    ),
    Tiny(
        "phi_qk_layernorm",
        seeded(
            lambda: tf.PhiForCausalLM(
                tf.PhiConfig(**{**_GQA, "num_key_value_heads": 4}, rope_parameters=_PARTIAL, qk_layernorm=True)
            )
        ),
    ),
    Tiny("phi3", seeded(lambda: tf.Phi3ForCausalLM(tf.Phi3Config(**_GQA)))),
    Tiny("olmo", seeded(lambda: tf.OlmoForCausalLM(tf.OlmoConfig(**_GQA)))),
    Tiny("olmo_clip_qkv", seeded(lambda: tf.OlmoForCausalLM(tf.OlmoConfig(**_GQA, clip_qkv=0.5)))),
    Tiny("olmo2", seeded(lambda: tf.Olmo2ForCausalLM(tf.Olmo2Config(**_GQA)))),
    Tiny(
        "olmo3",
        seeded(lambda: tf.Olmo3ForCausalLM(tf.Olmo3Config(**_GQA, **_SLIDING))),
        sliding_window=4,
    ),
    Tiny(
        "stablelm_parallel",
        seeded(
            lambda: tf.StableLmForCausalLM(
                tf.StableLmConfig(**_GQA, rope_parameters=_PARTIAL, use_parallel_residual=True, qk_layernorm=True)
            )
        ),
    ),
    Tiny(
        "stablelm",
        seeded(lambda: tf.StableLmForCausalLM(tf.StableLmConfig(**_GQA, rope_parameters=_PARTIAL))),
    ),
    Tiny("cohere", seeded(lambda: tf.CohereForCausalLM(tf.CohereConfig(**_GQA, logit_scale=0.5)))),
    Tiny(
        "cohere2",
        seeded(lambda: tf.Cohere2ForCausalLM(tf.Cohere2Config(**_GQA, **_SLIDING, logit_scale=0.5))),
        sliding_window=4,
    ),
    Tiny(
        "granite",
        seeded(lambda: tf.GraniteForCausalLM(tf.GraniteConfig(**_GQA, **_GRANITE))),
    ),
    Tiny("smollm3", seeded(lambda: tf.SmolLM3ForCausalLM(tf.SmolLM3Config(**_GQA)))),
]
