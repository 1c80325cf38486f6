"""Tiny randomly initialised Hugging Face models, one per family variant, built in memory.

Tests take them from the session fixture ``tiny`` (tests/conftest.py, a :class:`TinyModels`): each
model is built once per session and every test gets its own copy, so a test may change its model.
"""

from __future__ import annotations

import copy
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers as tf
from tokenizers import Tokenizer, decoders, models, normalizers
from transformers import PreTrainedModel

import circuitscope as cs
from circuitscope.tasks import Task
from circuitscope.tasks.metrics import MetricName

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
_NEOX: dict[str, Any] = {**_LLAMA, "intermediate_size": 64, "num_attention_heads": 4}
_BERT: dict[str, Any] = {**_LLAMA, "num_attention_heads": 4}
_SLIDING: dict[str, Any] = dict(  # Gemma 2 and 3: one sliding-window layer, then one full
    **_LLAMA,
    num_attention_heads=4,
    head_dim=8,
    sliding_window=4,
    query_pre_attn_scalar=16,
    layer_types=["sliding_attention", "full_attention"],
)


def llama_config(**overrides: Any) -> tf.LlamaConfig:
    """The tiny Llama's config (vocabulary VOCAB, d_model 32, 2 layers, 4 heads, 2 kv heads), with overrides."""
    return tf.LlamaConfig(**{**_LLAMA, "num_attention_heads": 4, "num_key_value_heads": 2, **overrides})


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
                    **_NEOX,
                    rope_parameters={"rope_theta": 10000.0, "partial_rotary_factor": 0.5, "rope_type": "default"},
                    use_parallel_residual=True,
                )
            )
        ),
    ),
    Tiny(
        "gpt_neox_sequential",
        _seeded(lambda: tf.GPTNeoXForCausalLM(tf.GPTNeoXConfig(**_NEOX, use_parallel_residual=False))),
    ),
    Tiny(
        "llama_mha",
        _seeded(lambda: tf.LlamaForCausalLM(llama_config(num_key_value_heads=4))),
    ),
    Tiny(
        "llama_gqa",
        _seeded(lambda: tf.LlamaForCausalLM(llama_config())),
    ),
    Tiny(
        "llama_mqa",
        _seeded(lambda: tf.LlamaForCausalLM(llama_config(num_key_value_heads=1))),
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
                    **_SLIDING,
                    num_key_value_heads=2,
                    attn_logit_softcapping=5.0,
                    final_logit_softcapping=3.0,
                )
            )
        ),
        sliding_window=4,
    ),
    Tiny(
        "gemma3",
        _seeded(lambda: tf.Gemma3ForCausalLM(tf.Gemma3TextConfig(**_SLIDING, num_key_value_heads=1))),
        sliding_window=4,
    ),
    Tiny(
        "bert",
        _seeded(lambda: tf.BertForMaskedLM(tf.BertConfig(**_BERT))),
        causal=False,
    ),
    Tiny(
        "bert_encoder",
        _seeded(lambda: tf.BertModel(tf.BertConfig(**_BERT), add_pooling_layer=False)),
        causal=False,
    ),
]

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
