"""A tiny 4-layer Llama (4 heads, 2 key/value heads) with a word-level tokenizer over the IOI words,
so IOI prompts run without a download; and head classes written by hand."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
import transformers as tf
from tokenizers import Tokenizer, models, pre_tokenizers

import circuitscope as cs
from circuitscope.circuits.ioi.result import (
    HEAD_CLASSES,
    ClassFinding,
    HeadClass,
    HeadClasses,
    HeadEvidence,
    ThresholdRule,
)
from circuitscope.engine.grid import ScoreGrid
from circuitscope.tasks.ioi import BABA_TEMPLATES, NAMES, OBJECTS, PLACES
from tests.families.recipe import LLAMA as _LLAMA
from tests.families.recipe import seeded as _seeded

N_LAYERS, N_HEADS = 4, 4


def ioi_tokenizer() -> tf.PreTrainedTokenizerFast:
    """One token per word or punctuation mark of the IOI templates, names, places and objects."""
    words: set[str] = set()
    for template in BABA_TEMPLATES:
        words |= set(re.findall(r"\w+|[^\w\s]+", re.sub(r"\[\w+\]", " ", template)))
    vocab = ["<pad>", "<bos>", "<unk>", *sorted(words), *PLACES, *OBJECTS, *NAMES]
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()  # type: ignore[assignment]
    return tf.PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", pad_token="<pad>", unk_token="<unk>")


def ioi_model() -> cs.HookedModel:
    tok = ioi_tokenizer()
    config = {**_LLAMA, "vocab_size": len(tok), "num_hidden_layers": N_LAYERS}
    build = _seeded(
        lambda: tf.LlamaForCausalLM(tf.LlamaConfig(**config, num_attention_heads=N_HEADS, num_key_value_heads=2))
    )
    return cs.HookedModel(build(), tok)


def hand_classes(members: Mapping[Any, list[tuple[int, int]]]) -> HeadClasses:
    """Head classes with the given members (zero scores; classes not given are empty)."""
    grid = ScoreGrid(
        scores=torch.zeros(N_LAYERS, N_HEADS), axes=("layer", "head"), labels={}, metric="logit_diff",
        clean_value=None, corrupted_value=None,
    )  # fmt: skip
    classes: dict[HeadClass, ClassFinding] = {
        name: ClassFinding(
            name, "by hand", grid, "positive", 0.0, [HeadEvidence(a, b, 0.0) for a, b in members.get(name, [])]
        )
        for name in HEAD_CLASSES
    }
    return HeadClasses(ThresholdRule(), classes)


CIRCUIT: dict[HeadClass, list[tuple[int, int]]] = {
    "previous_token": [(0, 0)],
    "duplicate_token": [(0, 3)],
    "induction": [(1, 1)],
    "s_inhibition": [(2, 0), (2, 3)],
    "name_mover": [(3, 1)],
    "negative_name_mover": [(3, 2)],
    "backup_name_mover": [(3, 0)],
}
"""A circuit in the order the paper's classes sit in GPT-2 small, one layer per step."""
