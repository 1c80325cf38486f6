"""Diffing: a model against itself gives zeros; against a perturbed copy, the differences land where the change is."""

from __future__ import annotations

import pytest
import torch
import transformers as tf
from tokenizers import Tokenizer, models

import circuitscope as cs
from circuitscope.diffing import (
    TokenizerMismatchError,
    attention_diff,
    interpolate,
    layer_cka,
    linear_cka,
    loss_diff,
    weight_diff,
)
from tests.tiny_models import TinyModels

TEXTS = ["the quick brown fox jumps over the lazy dog.", "one, two, three: four!"]


@pytest.fixture(scope="module")
def a(tiny: TinyModels) -> cs.HookedModel:
    return tiny.text(seed=0)


@pytest.fixture(scope="module")
def b(tiny: TinyModels, a: cs.HookedModel) -> cs.HookedModel:
    """A with only layer 1's MLP down-projection changed."""
    model = tiny.text(seed=0)
    with torch.no_grad():
        w = model.hf_model.model.layers[1].mlp.down_proj.weight
        w.add_(torch.randn(w.shape, generator=torch.Generator().manual_seed(5)) * 0.5)
    return model


def test_a_model_against_itself_differs_nowhere(tiny: TinyModels, a: cs.HookedModel) -> None:
    same = tiny.text(seed=0)
    ld = loss_diff(a, same, TEXTS)
    assert all(bool((d == 0).all()) for d in ld.diff)
    # CKA(x, x) in float64 is 1 up to rounding of its normalisation (~1e-16; exact here)
    torch.testing.assert_close(layer_cka(a, same, TEXTS).cka, torch.ones(2), rtol=0, atol=1e-9)
    assert float(attention_diff(a, same, TEXTS).distance.abs().max()) == 0.0
    wd = weight_diff(a, same)
    assert max(wd.diff_norm) == 0.0 and wd.total_relative == 0.0


def test_a_perturbed_layer_shows_up_where_it_was_changed(a: cs.HookedModel, b: cs.HookedModel) -> None:
    wd = weight_diff(a, b)
    changed = [c for c, d in zip(wd.components, wd.diff_norm, strict=True) if d > 0]
    assert changed == ["L1.mlp"]
    cka = layer_cka(a, b, TEXTS).cka
    assert float(cka[0]) == pytest.approx(1.0, abs=1e-9) and float(cka[1]) < 0.999
    # the MLP comes after attention, so no pattern changes in either layer of a 2-layer model
    assert float(attention_diff(a, b, TEXTS).distance.max()) == 0.0
    ld = loss_diff(a, b, TEXTS)
    assert ld.mean_a != ld.mean_b
    top = ld.top_contexts(k=3)
    assert abs(top[0].diff) == max(float(d.abs().max()) for d in ld.diff)
    assert top[0].tokens[top[0].focus] == ld.str_tokens[top[0].text_index][top[0].position]


def test_linear_cka_properties() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 8, generator=g)
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g))
    assert linear_cka(x, x @ q * 3.0 + 1.0) == pytest.approx(1.0, abs=1e-9)  # rotation, scale, shift invariant
    assert linear_cka(x, torch.randn(50, 8, generator=g)) < 0.5


def test_interpolation_endpoints_are_the_models(a: cs.HookedModel, b: cs.HookedModel) -> None:
    path = interpolate(a, b, TEXTS, alphas=[0.0, 0.5, 1.0])
    assert float(path.loss[0]) == pytest.approx(path.loss_a, abs=1e-5)
    assert float(path.loss[2]) == pytest.approx(path.loss_b, abs=1e-5)
    # at an endpoint the interpolated weights are a model's own up to float32 rounding of (1 - a) w + a v
    torch.testing.assert_close(path.linearity[[0, 2]], torch.ones(2, 2), rtol=0, atol=1e-5)
    assert float(path.linearity[1, 0]) == pytest.approx(1.0, abs=1e-5)  # layer 0 is unchanged
    assert float(path.linearity[1, 1]) <= 1.0 + 1e-6


def test_different_tokenizers_are_refused(tiny: TinyModels, a: cs.HookedModel) -> None:
    vocab = {t: i for i, t in enumerate(["<pad>", "<bos>", "<eos>", "<unk>", *"abcdefghij "])}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok = tf.PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", pad_token="<pad>", unk_token="<unk>")
    other = cs.HookedModel(tiny.text(seed=0).hf_model, tok)
    with pytest.raises(TokenizerMismatchError, match="different tokenizers"):
        loss_diff(a, other, TEXTS)
