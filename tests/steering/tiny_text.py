"""A tiny character-level tokenizer and a tiny Llama that uses it: text-level tests without a download."""

from __future__ import annotations

import string
from pathlib import Path

import torch
import transformers as tf
from tokenizers import Tokenizer, decoders, models, normalizers

import circuitscope as cs

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
CHARS = list(string.ascii_lowercase + string.digits + " .,!?'+-=:<>")


def char_tokenizer() -> tf.PreTrainedTokenizerFast:
    vocab = {t: i for i, t in enumerate(SPECIALS + CHARS)}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.decoder = decoders.Fuse()
    return tf.PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def tiny_text_model(seed: int = 0, layers: int = 2) -> cs.HookedModel:
    """A random 2-layer Llama (d_model 32, 4 heads, 2 kv heads) with the character tokenizer."""
    tok = char_tokenizer()
    torch.manual_seed(seed)
    config = tf.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=int(tok.bos_token_id),  # type: ignore[arg-type]
        eos_token_id=int(tok.eos_token_id),  # type: ignore[arg-type]
        pad_token_id=int(tok.pad_token_id),  # type: ignore[arg-type]
    )
    model = tf.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return cs.HookedModel(model, tok)


def save_tiny_text_model(path: Path, layers: int = 2) -> Path:
    """:func:`tiny_text_model` and its tokenizer saved as a Hugging Face folder (for CLI tests)."""
    model = tiny_text_model(layers=layers)
    model.hf_model.save_pretrained(path)
    model.tokenizer.save_pretrained(path)
    return path
