"""Tiny recipes of the families circuitscope opened first: GPT-2, GPT-NeoX, Llama/Qwen, Gemma 1/2/3, BERT."""

from __future__ import annotations

from typing import Any

import transformers as tf

from tests.families.recipe import LLAMA, VOCAB, Tiny, llama_config, seeded

_NEOX: dict[str, Any] = {**LLAMA, "intermediate_size": 64, "num_attention_heads": 4}
_BERT: dict[str, Any] = {**LLAMA, "num_attention_heads": 4}
_SLIDING: dict[str, Any] = dict(  # Gemma 2 and 3: one sliding-window layer, then one full
    **LLAMA,
    num_attention_heads=4,
    head_dim=8,
    sliding_window=4,
    query_pre_attn_scalar=16,
    layer_types=["sliding_attention", "full_attention"],
)

RECIPES: list[Tiny] = [
    Tiny(
        "gpt2",
        seeded(
            lambda: tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64))
        ),
    ),
    Tiny(
        "gpt_neox",
        seeded(
            lambda: tf.GPTNeoXForCausalLM(
                tf.GPTNeoXConfig(
                    **_NEOX,
                    rope_parameters={"rope_theta": 10000.0, "partial_rotary_factor": 0.5, "rope_type": "default"},
                    use_parallel_residual=True,
                )
            )
        ),
    ),
    Tiny(
        "gpt_neox_sequential",
        seeded(lambda: tf.GPTNeoXForCausalLM(tf.GPTNeoXConfig(**_NEOX, use_parallel_residual=False))),
    ),
    Tiny(
        "llama_mha",
        seeded(lambda: tf.LlamaForCausalLM(llama_config(num_key_value_heads=4))),
    ),
    Tiny(
        "llama_gqa",
        seeded(lambda: tf.LlamaForCausalLM(llama_config())),
    ),
    Tiny(
        "llama_mqa",
        seeded(lambda: tf.LlamaForCausalLM(llama_config(num_key_value_heads=1))),
    ),
    Tiny(
        "qwen2",
        seeded(lambda: tf.Qwen2ForCausalLM(tf.Qwen2Config(**LLAMA, num_attention_heads=4, num_key_value_heads=2))),
    ),
    Tiny(
        "qwen3",
        seeded(
            lambda: tf.Qwen3ForCausalLM(
                tf.Qwen3Config(**LLAMA, num_attention_heads=4, num_key_value_heads=2, head_dim=8)
            )
        ),
    ),
    Tiny(
        "gemma",
        seeded(
            lambda: tf.GemmaForCausalLM(
                tf.GemmaConfig(**LLAMA, num_attention_heads=4, num_key_value_heads=1, head_dim=8)
            )
        ),
    ),
    Tiny(
        "gemma2_softcap",
        seeded(
            lambda: tf.Gemma2ForCausalLM(
                tf.Gemma2Config(
                    **_SLIDING, num_key_value_heads=2, attn_logit_softcapping=5.0, final_logit_softcapping=3.0
                )
            )
        ),
        sliding_window=4,
    ),
    Tiny(
        "gemma3",
        seeded(lambda: tf.Gemma3ForCausalLM(tf.Gemma3TextConfig(**_SLIDING, num_key_value_heads=1))),
        sliding_window=4,
    ),
    Tiny(
        "bert",
        seeded(lambda: tf.BertForMaskedLM(tf.BertConfig(**_BERT))),
        causal=False,
    ),
    Tiny(
        "bert_encoder",
        seeded(lambda: tf.BertModel(tf.BertConfig(**_BERT), add_pooling_layer=False)),
        causal=False,
    ),
]
