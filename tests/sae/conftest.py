"""Fixtures of the SAE tests: one torch thread, a tiny model with a character tokenizer, synthetic sparse data."""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

import circuitscope as cs
from tests.tiny_models import VOCAB, TinyModels

CHARS = string.ascii_letters + string.digits + " .,;:!?'\"-()\n"


@pytest.fixture(autouse=True)
def _one_thread(one_thread: None) -> None:
    """Every SAE test on one torch thread (tests/conftest.py's ``one_thread``)."""


def char_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level fast tokenizer over the tiny models' 97-token vocabulary, BOS = id 1."""
    vocab = {"<pad>": 0, "<bos>": 1, "<unk>": 2}
    for ch in CHARS:
        if len(vocab) < VOCAB:
            vocab[ch] = len(vocab)
    while len(vocab) < VOCAB:
        vocab[f"<extra{len(vocab)}>"] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", pad_token="<pad>", unk_token="<unk>")


TEXT = (
    "Shall I compare thee to a summer's day? Thou art more lovely and more temperate: "
    "Rough winds do shake the darling buds of May, And summer's lease hath all too short a date. "
) * 40


@pytest.fixture(scope="session")
def tiny_model(tiny: TinyModels) -> cs.HookedModel:
    return tiny.hooked("llama_gqa", char_tokenizer())


@pytest.fixture(scope="session")
def tiny_folder(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model and its tokenizer saved as a Hugging Face folder (for the CLI)."""
    folder = tmp_path_factory.mktemp("tiny-llama-tok")
    tiny.hf("llama_gqa").save_pretrained(folder)
    char_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "sonnets.txt"
    path.write_text(TEXT)
    return path


@dataclass(frozen=True)
class Synthetic:
    """Activations that are sparse non-negative combinations of known unit directions."""

    directions: torch.Tensor
    """[n_features, d] unit vectors."""
    data: torch.Tensor
    """[n, d] samples."""


def synthetic(
    n: int = 32_768, d: int = 24, n_features: int = 32, p: float = 0.08, seed: int = 0, bias: float = 0.0
) -> Synthetic:
    gen = torch.Generator().manual_seed(seed)
    directions = torch.randn(n_features, d, generator=gen)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    active = torch.rand(n, n_features, generator=gen) < p
    mags = torch.rand(n, n_features, generator=gen) + 0.5
    data = (active * mags) @ directions + bias
    return Synthetic(directions, data)


def recovered_fraction(directions: torch.Tensor, W_dec: torch.Tensor, threshold: float = 0.9) -> float:
    """Fraction of true directions with a decoder row of cosine > threshold."""
    dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
    cos = directions @ dec.T
    return float((cos.max(dim=1).values > threshold).float().mean())
