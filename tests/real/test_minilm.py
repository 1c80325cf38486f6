"""Real-model tier: the all-MiniLM-L6-v2 BERT encoder (fetched from PyPI by `make test`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import circuitscope as cs

pytestmark = pytest.mark.real

FOLDER = Path(os.environ.get("CIRCUITSCOPE_MINILM", Path(__file__).parents[2] / ".data" / "all-MiniLM-L6-v2"))


@pytest.fixture(scope="module")
def minilm() -> cs.HookedModel:
    if not (FOLDER / "config.json").is_file():
        pytest.skip(f"{FOLDER} is missing: run `python scripts/fetch_data.py minilm` (make test does)")
    return cs.load_model(FOLDER)


@torch.no_grad()
def test_minilm_matches_transformers_and_decomposes(minilm: cs.HookedModel) -> None:
    from transformers import AutoModel

    assert (minilm.cfg.family, minilm.cfg.n_layers, minilm.cfg.d_model, minilm.cfg.causal) == ("bert", 6, 384, False)
    texts = ["The cat sat on the mat.", "Interpretability is fun"]
    tokens = minilm.to_tokens(texts)
    assert minilm.to_str_tokens(tokens[0])[0] == "[CLS]" and minilm.to_str_tokens(tokens[0])[-1] == "[SEP]"
    mask = (tokens != minilm.tokenizer.pad_token_id).long()
    reference = AutoModel.from_pretrained(str(FOLDER)).eval()
    expected = reference(input_ids=tokens, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(minilm(texts), expected, atol=1e-5, rtol=0)  # text: the padding mask is built
    torch.testing.assert_close(minilm(tokens), expected, atol=1e-5, rtol=0)  # encoder tokens: mask from padding
    _, cache = minilm.run_with_cache(tokens)
    torch.testing.assert_close(cache["resid_post", -1], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(cache.decompose_resid().total(), expected, atol=1e-4, rtol=0)
    pattern = cache["pattern", 0][1]  # second text: three padding positions are never attended
    assert torch.all(pattern[..., -3:] == 0)
