"""The recipe of one tiny random model, and the small configs the family groups share.

Each family group keeps its recipes in its own file of this package (``core.py``: the families
circuitscope opened first; ``dense.py``, ``eager.py``, ``moe.py``, ``ssm.py``, ``encoders.py``: the families of
issue 14). ``tests/tiny_models.py`` joins them into ``TINY``, so a family added to a group file
gets the whole family contract (tests/core/test_families.py) and every test parametrised over TINY.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import transformers as tf
from transformers import PreTrainedModel

__all__ = ["IDS", "LLAMA", "SIZES", "VOCAB", "Tiny", "llama_config", "seeded"]

VOCAB = 97


@dataclass(frozen=True)
class Tiny:
    """A recipe for one tiny model."""

    name: str
    build: Callable[[], PreTrainedModel]
    causal: bool = True
    sliding_window: int | None = None
    sinks: bool = False
    """Attention sinks (gpt-oss): a sink logit takes part of each softmax row, so pattern rows sum to less than 1."""
    attention: bool = True
    """The model has attention layers (False: a pure state-space model, Mamba). The family contract runs the
    attention-level tests on the attention layers (a hybrid's are those outside ``cfg.mixer_layers``) and checks
    that the wired model agrees with this declaration, so nothing is skipped silently."""


def seeded(make: Callable[[], PreTrainedModel]) -> Callable[[], PreTrainedModel]:
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


SIZES: dict[str, Any] = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, max_position_embeddings=64)
"""The tiny sizes under transformers' usual config names (the heads are added by each family that takes them)."""

LLAMA: dict[str, Any] = {**SIZES, "intermediate_size": 48}

IDS: dict[str, Any] = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)
"""Special token ids inside the tiny vocabulary (some configs' defaults lie outside it)."""


def llama_config(**overrides: Any) -> tf.LlamaConfig:
    """The tiny Llama's config (vocabulary VOCAB, d_model 32, 2 layers, 4 heads, 2 kv heads), with overrides."""
    return tf.LlamaConfig(**{**LLAMA, "num_attention_heads": 4, "num_key_value_heads": 2, **overrides})
