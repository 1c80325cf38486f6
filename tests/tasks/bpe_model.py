"""A GPT-2-style byte-level BPE tokenizer trained on the task generators' own words, and a tiny Llama using it.

Every word of the generators' lists and templates becomes one token (with its leading space), digits
are split one by one (as Gemma's tokenizer does), and letters that never occur together in the
training text (the ``"NS"`` of ``"(NS"``) stay separate tokens. :data:`LEFT_OUT` words are not in the
training text, so they are split into pieces: the generators must drop them.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import transformers as tf
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

import circuitscope as cs
from circuitscope.tasks import TASK_NAMES, ioi
from circuitscope.tasks.generate import task_words

LEFT_OUT = ("Sophie", "Venture", "treasured", "kite")
"""Words of the generators' lists that this tokenizer splits (each must never appear in a generated task)."""

_SPECIALS = ["<pad>", "<bos>", "<eos>"]


def _words() -> list[str]:
    texts = [str(v) for name in TASK_NAMES for words in task_words(name).values() for v in words]
    texts += [str(v) for value in vars(ioi).values() if isinstance(value, list) for v in value]
    words = {w for t in texts for w in re.findall(r"[A-Za-z]+", t)}
    words |= {w.lower() for w in words} | {w.capitalize() for w in words}
    words |= {"In", "total", "bought", "I", "is", "are", "he", "she", "good", "bad", "two", "three", "four"}
    return sorted(words - set(LEFT_OUT) - {w.lower() for w in LEFT_OUT})


def bpe_tokenizer() -> tf.PreTrainedTokenizerFast:
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=20000, special_tokens=_SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    text = " ".join(_words()) + " , . ' : ( ) 0 1 2 3 4 5 6 7 8 9"
    core.train_from_iterator([text, "A" + text], trainer=trainer)
    return tf.PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")


def bpe_model(seed: int = 0) -> cs.HookedModel:
    """A random 2-layer Llama (d_model 32) with :func:`bpe_tokenizer`."""
    tok = bpe_tokenizer()
    torch.manual_seed(seed)
    # The tiny config spelled out field by field, as every tiny recipe is: alike on purpose.
    config = tf.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=int(tok.bos_token_id),  # type: ignore[arg-type]
        eos_token_id=int(tok.eos_token_id),  # type: ignore[arg-type]
        pad_token_id=int(tok.pad_token_id),  # type: ignore[arg-type]
    )
    return cs.HookedModel(tf.LlamaForCausalLM(config).eval(), tok)


def save_bpe_model(path: Path) -> Path:
    """:func:`bpe_model` and its tokenizer saved as a Hugging Face folder (for CLI tests)."""
    model = bpe_model()
    model.hf_model.save_pretrained(path)
    model.tokenizer.save_pretrained(path)
    return path
