"""OV copying and copy-suppression scores: hand-set heads, random heads, and a naive per-token loop."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import circuitscope as cs
from circuitscope.analysis.copying import (
    CopyingConfig,
    copy_suppression_scores,
    copying_scores,
    ov_copying,
    sample_token_ids,
)
from circuitscope.report.heads import plot_head_scores
from circuitscope.toy.model import build_toy


def _hand_set(V: int = 24, extra: int = 8) -> cs.HookedModel:
    """Tokens one-hot in the first V of V + extra dims; L1H0 has OV = identity on them, L1H1 its negative."""
    D = V + extra
    hf = build_toy(
        seed=0,
        d_vocab=V,
        n_ctx=8,
        d_model=D,
        n_layers=2,
        n_heads=3,
        d_head=V,
        attn_only=True,
        layer_norm=False,
        positional="none",
        initializer_range=0.0,
    )
    eye = torch.eye(V)
    with torch.no_grad():
        for p in hf.parameters():
            p.zero_()
        hf.embed.weight[:, :V] = eye
        hf.unembed.weight[:, :V] = eye
        attn: Any = hf.blocks[1].attn
        attn.v.weight[0:V, :V] = eye  # head 0: W_V = identity on the token subspace
        attn.o.weight[:V, 0:V] = eye
        attn.v.weight[V : 2 * V, :V] = eye  # head 1: W_O = minus identity
        attn.o.weight[:V, V : 2 * V] = -eye
        # head 2 of layer 1 and every head of layer 0 stay zero
    return cs.HookedModel(hf.eval())


def test_hand_set_heads() -> None:
    model = _hand_set()
    copying, suppression = ov_copying(model, CopyingConfig(k=5))
    assert copying.scores.shape == suppression.scores.shape == (2, 3)
    assert copying.n_queries == copying.n_candidates == 24  # a vocabulary smaller than the sample is used whole
    expected_copy = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    expected_supp = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert torch.equal(copying.scores, expected_copy)  # zero heads: every logit ties, which counts against the token
    assert torch.equal(suppression.scores, expected_supp)
    assert copying.top(1) == [(1, 0, 1.0)]
    assert suppression.top(1) == [(1, 1, 1.0)]
    assert copying.baseline == pytest.approx(5 / 24)
    d = copying.to_dict()
    assert d["name"] == "copying" and d["scores"] == expected_copy.tolist() and d["k"] == 5
    assert len(list(plot_head_scores(suppression).data)) == 1


def _random_model(d_vocab: int, **extra: object) -> cs.HookedModel:
    return cs.HookedModel(
        build_toy(seed=3, d_vocab=d_vocab, n_ctx=8, d_model=32, n_layers=2, n_heads=4, initializer_range=0.3, **extra)
    )


def test_random_heads_are_near_the_baseline() -> None:
    model = _random_model(400)
    copying, suppression = ov_copying(model, CopyingConfig(k=5))
    assert copying.baseline == pytest.approx(5 / 400)
    for result in (copying, suppression):
        assert float(result.scores.mean()) == pytest.approx(result.baseline, abs=0.008)
        assert float(result.scores.max()) < 0.05


def _naive(model: cs.HookedModel, tokens: torch.Tensor, candidates: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
    """One forward pass and one python loop per token, with the modules themselves (bias subtracted)."""
    hf: Any = model.hf_model
    cfg = model.cfg
    copy = torch.zeros(cfg.n_layers, cfg.n_heads)
    supp = torch.zeros(cfg.n_layers, cfg.n_heads)
    with torch.no_grad():
        for t in tokens.tolist():
            _, cache = model.run_with_cache(
                torch.tensor([[t]]), names=["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post"]
            )
            for layer in range(cfg.n_layers):
                x = cache["blocks.0.hook_resid_pre" if layer == 0 else "blocks.0.hook_resid_post"][0, 0]
                ln1 = hf.blocks[layer].ln1
                u = ln1(x) - ln1.bias
                for head in range(cfg.n_heads):
                    o = u @ model.W_V[layer, head] @ model.W_O[layer, head]
                    y = (hf.ln_final(o) - hf.ln_final.bias) @ model.W_U
                    others = [int(c) for c in candidates if int(c) != t]
                    n_ge = sum(float(y[c]) >= float(y[t]) for c in others)
                    n_le = sum(float(y[c]) <= float(y[t]) for c in others)
                    copy[layer, head] += (n_ge < k) / len(tokens)
                    supp[layer, head] += (n_le < k) / len(tokens)
    return copy, supp


@pytest.mark.parametrize("candidates", ["sample", "full"])
def test_equals_a_naive_per_token_loop(candidates: str) -> None:
    model = _random_model(60, d_mlp=24)  # LayerNorm, an MLP in block 0, and 60 tokens of which 25 are sampled
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # LayerNorm weights and biases away from 1 and 0
        for p in model.hf_model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    config = CopyingConfig(k=3, n_tokens=25, seed=1, candidates=candidates, chunk=7, batch_size=4)  # type: ignore[arg-type]  # a parametrized str for the Literal option
    copying, suppression = ov_copying(model, config)
    tokens = sample_token_ids(model, 25, seed=1)
    assert tokens.shape == (25,) and len(set(tokens.tolist())) == 25
    all_tokens = tokens if candidates == "sample" else torch.arange(60)
    copy, supp = _naive(model, tokens, all_tokens, 3)
    # batched over candidates vs the naive loop: float32 rounding can flip a near tie; scores are fractions of 1/25
    assert torch.allclose(copying.scores, copy, atol=1e-6)
    assert torch.allclose(suppression.scores, supp, atol=1e-6)
    assert copying.n_candidates == (25 if candidates == "sample" else 60)
    assert torch.equal(copying_scores(model, config).scores, copying.scores)
    assert torch.equal(copy_suppression_scores(model, config).scores, suppression.scores)


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="k must be at least 1"):
        CopyingConfig(k=0)
    with pytest.raises(ValueError, match="candidates"):
        CopyingConfig(candidates="all")  # type: ignore[arg-type]  # the bad input under test
