"""Tiny recipes of the mixture-of-experts families (Mixtral, Qwen2/3-MoE, OLMoE, GraniteMoE, gpt-oss).

Each: d_model 32, 2 layers, 4 heads (2 kv heads), 4 experts, top-2, vocabulary VOCAB. gpt-oss has its attention
sinks and a sliding layer (window 4) before a full one.
"""

from __future__ import annotations

from typing import Any

import transformers as tf

from tests.families.recipe import LLAMA, Tiny, seeded

_ATTN: dict[str, Any] = dict(num_attention_heads=4, num_key_value_heads=2)
_MOE: dict[str, Any] = dict(num_experts_per_tok=2, router_aux_loss_coef=0.0)
_GRANITE: dict[str, Any] = dict(
    embedding_multiplier=2.0, residual_multiplier=0.5, attention_multiplier=0.3, logits_scaling=4.0
)
_QWEN_MOE: dict[str, Any] = dict(num_experts=4, moe_intermediate_size=24, norm_topk_prob=False, decoder_sparse_step=1)

RECIPES: list[Tiny] = [
    Tiny(
        "mixtral",
        seeded(lambda: tf.MixtralForCausalLM(tf.MixtralConfig(**LLAMA, **_ATTN, **_MOE, num_local_experts=4))),
    ),
    Tiny(
        "qwen2_moe",
        seeded(
            lambda: tf.Qwen2MoeForCausalLM(
                tf.Qwen2MoeConfig(**LLAMA, **_ATTN, **_MOE, **_QWEN_MOE, shared_expert_intermediate_size=40)
            )
        ),
    ),
    Tiny(
        "qwen3_moe",
        seeded(
            lambda: tf.Qwen3MoeForCausalLM(
                tf.Qwen3MoeConfig(**LLAMA, **_ATTN, **_MOE, **{**_QWEN_MOE, "norm_topk_prob": True})
            )
        ),
    ),
    Tiny(
        "olmoe",
        seeded(lambda: tf.OlmoeForCausalLM(tf.OlmoeConfig(**LLAMA, **_ATTN, **_MOE, num_experts=4, eos_token_id=None))),
    ),
    Tiny(
        "granitemoe",
        seeded(
            lambda: tf.GraniteMoeForCausalLM(
                tf.GraniteMoeConfig(**LLAMA, **_ATTN, **_MOE, num_local_experts=4, **_GRANITE)
            )
        ),
    ),
    Tiny(
        "gpt_oss",
        seeded(
            lambda: tf.GptOssForCausalLM(
                tf.GptOssConfig(
                    **LLAMA,
                    **_ATTN,
                    **_MOE,
                    num_local_experts=4,
                    head_dim=8,
                    rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                    sliding_window=4,
                    layer_types=["sliding_attention", "full_attention"],
                )
            )
        ),
        sliding_window=4,
        sinks=True,
    ),
]
