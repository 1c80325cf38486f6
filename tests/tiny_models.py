"""Tiny randomly initialised Hugging Face models, one per family variant, built in memory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import transformers as tf
from transformers import PreTrainedModel

VOCAB = 97


@dataclass(frozen=True)
class Tiny:
    """A recipe for one tiny model."""

    name: str
    build: Callable[[], PreTrainedModel]
    causal: bool = True
    sliding_window: int | None = None


def _seeded(make: Callable[[], PreTrainedModel]) -> Callable[[], PreTrainedModel]:
    def build() -> PreTrainedModel:
        torch.manual_seed(0)
        model = make().eval()
        # random init leaves some norms at exactly 1/0; perturb every parameter so that
        # wiring mistakes (a skipped norm, a swapped head) cannot cancel out
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        return model

    return build


_LLAMA: dict[str, Any] = dict(
    vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, max_position_embeddings=64
)

TINY: list[Tiny] = [
    Tiny(
        "gpt2",
        _seeded(
            lambda: tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64))
        ),
    ),
    Tiny(
        "gpt_neox",
        _seeded(
            lambda: tf.GPTNeoXForCausalLM(
                tf.GPTNeoXConfig(
                    vocab_size=VOCAB,
                    hidden_size=32,
                    intermediate_size=64,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    max_position_embeddings=64,
                    rope_parameters={"rope_theta": 10000.0, "partial_rotary_factor": 0.5, "rope_type": "default"},
                    use_parallel_residual=True,
                )
            )
        ),
    ),
    Tiny(
        "gpt_neox_sequential",
        _seeded(
            lambda: tf.GPTNeoXForCausalLM(
                tf.GPTNeoXConfig(
                    vocab_size=VOCAB,
                    hidden_size=32,
                    intermediate_size=64,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    max_position_embeddings=64,
                    use_parallel_residual=False,
                )
            )
        ),
    ),
    Tiny(
        "llama_mha",
        _seeded(lambda: tf.LlamaForCausalLM(tf.LlamaConfig(**_LLAMA, num_attention_heads=4, num_key_value_heads=4))),
    ),
    Tiny(
        "llama_gqa",
        _seeded(lambda: tf.LlamaForCausalLM(tf.LlamaConfig(**_LLAMA, num_attention_heads=4, num_key_value_heads=2))),
    ),
    Tiny(
        "llama_mqa",
        _seeded(lambda: tf.LlamaForCausalLM(tf.LlamaConfig(**_LLAMA, num_attention_heads=4, num_key_value_heads=1))),
    ),
    Tiny(
        "qwen2",
        _seeded(lambda: tf.Qwen2ForCausalLM(tf.Qwen2Config(**_LLAMA, num_attention_heads=4, num_key_value_heads=2))),
    ),
    Tiny(
        "qwen3",
        _seeded(
            lambda: tf.Qwen3ForCausalLM(
                tf.Qwen3Config(**_LLAMA, num_attention_heads=4, num_key_value_heads=2, head_dim=8)
            )
        ),
    ),
    Tiny(
        "gemma",
        _seeded(
            lambda: tf.GemmaForCausalLM(
                tf.GemmaConfig(**_LLAMA, num_attention_heads=4, num_key_value_heads=1, head_dim=8)
            )
        ),
    ),
    Tiny(
        "gemma2_softcap",
        _seeded(
            lambda: tf.Gemma2ForCausalLM(
                tf.Gemma2Config(
                    **_LLAMA,
                    num_attention_heads=4,
                    num_key_value_heads=2,
                    head_dim=8,
                    sliding_window=4,
                    attn_logit_softcapping=5.0,
                    final_logit_softcapping=3.0,
                    query_pre_attn_scalar=16,
                    layer_types=["sliding_attention", "full_attention"],
                )
            )
        ),
        sliding_window=4,
    ),
    Tiny(
        "gemma3",
        _seeded(
            lambda: tf.Gemma3ForCausalLM(
                tf.Gemma3TextConfig(
                    **_LLAMA,
                    num_attention_heads=4,
                    num_key_value_heads=1,
                    head_dim=8,
                    sliding_window=4,
                    query_pre_attn_scalar=16,
                    layer_types=["sliding_attention", "full_attention"],
                )
            )
        ),
        sliding_window=4,
    ),
    Tiny(
        "bert",
        _seeded(
            lambda: tf.BertForMaskedLM(
                tf.BertConfig(
                    vocab_size=VOCAB,
                    hidden_size=32,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    intermediate_size=48,
                    max_position_embeddings=64,
                )
            )
        ),
        causal=False,
    ),
    Tiny(
        "bert_encoder",
        _seeded(
            lambda: tf.BertModel(
                tf.BertConfig(
                    vocab_size=VOCAB,
                    hidden_size=32,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    intermediate_size=48,
                    max_position_embeddings=64,
                ),
                add_pooling_layer=False,
            )
        ),
        causal=False,
    ),
]

BY_NAME = {t.name: t for t in TINY}


def reference_output(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    out = model(input_ids=tokens)
    logits = getattr(out, "logits", None)
    return logits if logits is not None else out.last_hidden_state
