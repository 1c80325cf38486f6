"""Composition scores: equal to the definition on full matrices, GQA, baseline about 1/sqrt(d_model)."""

from __future__ import annotations

import math

import pytest
import torch

import circuitscope as cs
from circuitscope.analysis.composition import composition_score, composition_scores
from circuitscope.report.heads import plot_composition
from circuitscope.toy.model import build_toy
from tests.tiny_models import llama_config


def test_scores_equal_the_definition() -> None:
    model = cs.HookedModel(
        build_toy(seed=0, d_vocab=30, n_ctx=16, d_model=32, n_layers=3, n_heads=4, initializer_range=0.3)
    )
    result = composition_scores(model, baseline_samples=64)
    W_Q, W_K, W_V, W_O = (w.detach().double() for w in (model.W_Q, model.W_K, model.W_V, model.W_O))
    OV = W_V @ W_O
    QK = W_Q @ W_K.transpose(-1, -2)
    for la, ha, lb, hb in [(0, 1, 2, 3), (1, 0, 2, 2), (0, 3, 1, 0)]:
        assert result.q[la, ha, lb, hb].item() == pytest.approx(
            float(composition_score(OV[la, ha], QK[lb, hb])), rel=1e-5
        )
        assert result.k[la, ha, lb, hb].item() == pytest.approx(
            float(composition_score(OV[la, ha], QK[lb, hb].T)), rel=1e-5
        )
        assert result.v[la, ha, lb, hb].item() == pytest.approx(
            float(composition_score(OV[la, ha], OV[lb, hb])), rel=1e-5
        )
    # only earlier -> later layers compose
    assert torch.isnan(result.k[1, 0, 0, 0]) and torch.isnan(result.k[1, 0, 1, 2])
    # the random baseline is about 1/sqrt(d_model) (for d_head << d_model it is close)
    for mode in "qkv":
        assert result.baseline[mode] == pytest.approx(1 / math.sqrt(32), rel=0.35)
    assert result.top("k", 3)[0][4] == pytest.approx(float(torch.nan_to_num(result.k, nan=-1).max()))
    d = result.to_dict()
    assert d["k"][1][0][0][0] is None and d["baseline_theory"] == pytest.approx(1 / math.sqrt(32))
    assert plot_composition(result, "q").data


def test_composition_under_grouped_query_attention() -> None:
    import transformers as tf

    config = llama_config(vocab_size=50, max_position_embeddings=32)
    torch.manual_seed(0)
    model = cs.HookedModel(tf.LlamaForCausalLM(config))
    result = composition_scores(model, baseline_samples=2)
    W_K = model.W_K.detach().double().repeat_interleave(2, dim=1)
    W_Q, W_V, W_O = (w.detach().double() for w in (model.W_Q, model.W_V, model.W_O))
    OV = W_V.repeat_interleave(2, dim=1) @ W_O
    QK = W_Q @ W_K.transpose(-1, -2)
    assert result.k[0, 1, 1, 3].item() == pytest.approx(float(composition_score(OV[0, 1], QK[1, 3].T)), rel=1e-5)


def test_gram_and_factored_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small models use per-head Gram matrices, large ones the d_head-sized factors: the same numbers."""
    from circuitscope.analysis import composition

    torch.manual_seed(3)
    W_Q, W_K, W_V = (torch.randn(3, 4, 16, 5, dtype=torch.float64) for _ in range(3))
    W_K, W_V = W_K[:, :2], W_V[:, :2]  # grouped-query attention: 2 key/value heads
    W_O = torch.randn(3, 4, 5, 16, dtype=torch.float64)
    gram = composition._all_scores(W_Q, W_K, W_V, W_O, 4)
    monkeypatch.setattr(composition, "_GRAM_MAX_D_MODEL", 0)
    factored = composition._all_scores(W_Q, W_K, W_V, W_O, 4)
    for mode in ("q", "k", "v"):
        # two float64 routes (Gram matrices vs factored norms): rounding ~1e-16, measured 1.1e-16 on ~0.4
        torch.testing.assert_close(gram[mode], factored[mode], atol=1e-12, rtol=1e-10)
