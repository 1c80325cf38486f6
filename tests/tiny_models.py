"""Tiny randomly initialised Hugging Face models, one per family variant, built in memory.

Tests take them from the session fixture ``tiny`` (tests/conftest.py, a :class:`TinyModels`): each
model is built once per session and every test gets its own copy, so a test may change its model.
"""

from __future__ import annotations

import copy
import string
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import transformers as tf
from tokenizers import Tokenizer, decoders, models, normalizers
from transformers import PreTrainedModel

import circuitscope as cs
from circuitscope.tasks import Task
from circuitscope.tasks.metrics import MetricName
from tests.families import core, dense, eager, encoders, moe, ssm
from tests.families.recipe import VOCAB, Tiny, llama_config

TINY: list[Tiny] = [*core.RECIPES, *dense.RECIPES, *eager.RECIPES, *moe.RECIPES, *ssm.RECIPES, *encoders.RECIPES]
"""Every tiny family recipe; each group of families keeps its own in tests/families/."""

BY_NAME = {t.name: t for t in TINY}


def reference_output(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    out = model(input_ids=tokens)
    logits = getattr(out, "logits", None)
    return logits if logits is not None else out.last_hidden_state


def random_task(
    n: int,
    seq: int,
    *,
    seed: int,
    corrupt: tuple[int, int] | None,
    answer_from_end: Sequence[int] | None = None,
    metric: MetricName = "logit_diff",
    same_prompts: bool = False,
    name: str = "tiny",
) -> Task:
    """A task of random token ids over VOCAB, drawn in a fixed order from one seeded generator.

    ``corrupt``: the columns ``[a, b)`` the corrupted prompts redraw (None: corrupted = clean);
    ``answer_from_end``: each prompt's answer position counted back from ``seq`` (None: the last);
    ``same_prompts``: every prompt a copy of the first, each answered at the last position.
    """
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(1, VOCAB, (n, seq), generator=g)
    if same_prompts:
        clean = clean[:1].repeat(n, 1)
    corrupted = clean.clone()
    if corrupt is not None:
        a, b = corrupt
        corrupted[:, a:b] = torch.randint(1, VOCAB, (n, b - a), generator=g)
    if answer_from_end is None or same_prompts:
        answer_pos = torch.full((n,), seq - 1)
    else:
        answer_pos = torch.tensor([seq - k for k in answer_from_end])[:n]
    correct = torch.randint(0, VOCAB, (n,), generator=g)
    incorrect = torch.randint(0, VOCAB, (n,), generator=g)
    return Task(name, ["c"] * n, ["x"] * n, clean, corrupted, answer_pos, correct, incorrect, metric=metric)


SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
CHARS = list(string.ascii_lowercase + string.digits + " .,!?'+-=:<>")


def char_tokenizer() -> tf.PreTrainedTokenizerFast:
    """A lower-casing character tokenizer (4 specials, then one token per character of CHARS)."""
    vocab = {t: i for i, t in enumerate(SPECIALS + CHARS)}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.decoder = decoders.Fuse()
    return tf.PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def text_llama_config(tok: tf.PreTrainedTokenizerFast, **overrides: Any) -> tf.LlamaConfig:
    """:func:`llama_config` over the tokenizer's vocabulary, with its special tokens."""
    special = {f"{name}_token_id": getattr(tok, f"{name}_token_id") for name in ("bos", "eos", "pad")}
    return llama_config(vocab_size=len(tok), **special, **overrides)


def tiny_text_model(seed: int = 0, layers: int = 2) -> cs.HookedModel:
    """A random Llama (d_model 32, 4 heads, 2 kv heads) with the character tokenizer; prefer ``tiny.text``."""
    tok = char_tokenizer()
    torch.manual_seed(seed)
    model = tf.LlamaForCausalLM(text_llama_config(tok, num_hidden_layers=layers, max_position_embeddings=128)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return cs.HookedModel(model, tok)


class TinyModels:
    """The tiny models of a test session: each built once, every call hands out a fresh copy.

    A copy has the built model's exact weights, and the call leaves torch's global generator where a
    fresh build leaves it (each build seeds it), so a test's later random draws are those it had
    when it built its own model. Saved folders are shared: a test must not change one (copy it first).
    """

    def __init__(self, folders: Path) -> None:
        self._folders = folders
        self._built: dict[tuple[str, int, int], tuple[PreTrainedModel, torch.Tensor]] = {}
        self._saved: dict[tuple[str, int], Path] = {}

    def _copy(self, key: tuple[str, int, int], build: Callable[[], PreTrainedModel]) -> PreTrainedModel:
        if key not in self._built:
            built = build()
            self._built[key] = (built, torch.get_rng_state())
        built, rng = self._built[key]
        torch.set_rng_state(rng)
        return copy.deepcopy(built)

    def hf(self, name: str) -> PreTrainedModel:
        """A copy of the Hugging Face model ``BY_NAME[name].build()``."""
        return self._copy((name, 0, 0), BY_NAME[name].build)

    def hooked(self, name: str, tokenizer: Any = None) -> cs.HookedModel:
        """``HookedModel(BY_NAME[name].build(), tokenizer)``, on a copy."""
        return cs.HookedModel(self.hf(name), tokenizer)

    def text(self, seed: int = 0, layers: int = 2) -> cs.HookedModel:
        """A copy of :func:`tiny_text_model` (the character-level Llama and its tokenizer)."""
        return cs.HookedModel(
            self._copy(("text", seed, layers), lambda: tiny_text_model(seed, layers).hf_model), char_tokenizer()
        )

    def folder(self, name: str) -> Path:
        """``BY_NAME[name]``'s model saved as a Hugging Face folder (no tokenizer); shared, do not change it."""
        if (name, 0) not in self._saved:
            path = self._folders / name
            self.hf(name).save_pretrained(path)
            self._saved[name, 0] = path
        return self._saved[name, 0]

    def text_folder(self, layers: int = 2) -> Path:
        """:meth:`text` and its tokenizer saved as a Hugging Face folder; shared, do not change it."""
        if ("text", layers) not in self._saved:
            path = self._folders / f"text-{layers}"
            model = self.text(layers=layers)
            model.hf_model.save_pretrained(path)
            model.tokenizer.save_pretrained(path)
            self._saved["text", layers] = path
        return self._saved["text", layers]
