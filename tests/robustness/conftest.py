"""Fixtures shared by the robustness tests."""

from __future__ import annotations

import pytest

import circuitscope as cs
from tests.tiny_models import TinyModels, char_tokenizer


@pytest.fixture(scope="module")
def llama(tiny: TinyModels) -> cs.HookedModel:
    """The tiny grouped-query Llama with a character tokenizer, one copy per test module: the tests attach and
    leave hooks on it, so no module shares its copy with another."""
    return tiny.hooked("llama_gqa", char_tokenizer())
