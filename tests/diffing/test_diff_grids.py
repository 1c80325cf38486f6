"""Diff results as score grids (CKA per layer, attention distance per head), typed context orders, progress."""

from __future__ import annotations

import pytest
import torch

import circuitscope as cs
from circuitscope.diffing import attention_diff, interpolate, layer_cka, linear_cka, loss_diff
from circuitscope.engine.grid import ScoreGrid
from tests.tiny_models import TinyModels

TEXTS = ["the quick brown fox jumps over the lazy dog.", "one, two, three: four!"]


@pytest.fixture(scope="module")
def a(tiny: TinyModels) -> cs.HookedModel:
    return tiny.text(seed=0)


@pytest.fixture(scope="module")
def b(tiny: TinyModels) -> cs.HookedModel:
    return tiny.text(seed=1)


def test_cka_is_a_layer_grid_equal_to_cka_of_the_cached_activations(a: cs.HookedModel, b: cs.HookedModel) -> None:
    result = layer_cka(a, b, TEXTS)
    assert isinstance(result, ScoreGrid) and result.axes == ("layer",) and result.cka is result.scores
    assert result.labels == {"layer": [str(i) for i in range(a.cfg.n_layers)]}
    names = [f"blocks.{i}.hook_resid_post" for i in range(a.cfg.n_layers)]
    xs, ys = [], []
    skip = 1 if a.tok.default_prepend_bos else 0
    with torch.no_grad():
        for text in TEXTS:  # the naive reference: every token but BOS, both models
            ids = a.to_tokens(text, truncate=True)[:, :256]
            xs.append(a.run_with_cache(ids, names=names)[1])
            ys.append(b.run_with_cache(ids, names=names)[1])
    for i, n in enumerate(names):
        x = torch.cat([c[n][0, skip:].float() for c in xs])
        y = torch.cat([c[n][0, skip:].float() for c in ys])
        assert float(result.cka[i]) == pytest.approx(linear_cka(x, y), abs=1e-6)
        assert result.n_tokens == x.shape[0]
    assert result.to_dict() == {"layers": result.layers, "cka": result.cka.tolist(), "n_tokens": result.n_tokens}


def test_attention_distance_is_a_layer_by_head_grid(a: cs.HookedModel) -> None:
    result = attention_diff(a, a, TEXTS)
    assert result.axes == ("layer", "head") and result.distance.shape == (a.cfg.n_layers, a.cfg.n_heads)
    assert result.labels["head"] == [str(h) for h in range(a.cfg.n_heads)]
    assert float(result.distance.abs().max()) == 0.0
    assert result.to_json()["scores"] == result.distance.tolist()


def test_context_orders_are_checked(a: cs.HookedModel, b: cs.HookedModel) -> None:
    diff = loss_diff(a, b, TEXTS)
    worse = diff.top_contexts(3, by="b_worse")
    assert [c.diff for c in worse] == sorted((c.diff for c in worse), reverse=True)
    with pytest.raises(ValueError, match="by must be one of abs, b_worse, a_worse, got 'worst'"):
        diff.top_contexts(3, by="worst")  # type: ignore[arg-type]  # the bad input under test


def test_interpolation_reports_one_unit_an_alpha(a: cs.HookedModel, b: cs.HookedModel) -> None:
    calls: list[tuple[str, int, int]] = []
    interpolate(a, b, TEXTS[:1], alphas=[0.0, 1.0], on_progress=lambda *call: calls.append(call))
    assert calls == [("interpolating", 0, 2), ("interpolating", 1, 2), ("interpolating", 2, 2)]
