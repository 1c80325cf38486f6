"""The features views equal the SAE's own encode and decoder, and refuse sources of another model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

import circuitscope as cs
from circuitscope.sae import SAE, SAEConfig, create_sae
from circuitscope.serve.errors import ServeInputError, ServeNotFoundError
from circuitscope.serve.views import FeatureSource, feature_page_view, feature_sources, token_features_view
from circuitscope.serve.views.features import source_named
from circuitscope.transcoders.as_sae import layer_as_sae
from tests.graphs.conftest import random_transcoders

HOOK = "blocks.1.hook_resid_pre"
PROMPT = "the cat sat on the mat"
TEXTS = ["the quick brown fox jumps over the lazy dog. " * 3, "a stitch in time saves nine, or so they say. " * 3]


def _sae(d_in: int = 32, hook: str = HOOK) -> SAE:
    sae = create_sae(SAEConfig(architecture="relu", d_in=d_in, d_sae=16, hook_name=hook))
    sae.initialize(torch.Generator().manual_seed(0))
    with torch.no_grad():
        sae.b_enc.fill_(0.02)  # some features fire on most tokens
    return sae.requires_grad_(False)


@pytest.fixture(scope="module")
def sources(text_model: cs.HookedModel) -> dict[str, FeatureSource]:
    return feature_sources(text_model, [_sae(), _sae()], random_transcoders(text_model, d_sae=24))


@pytest.fixture(autouse=True)
def _no_leaked_hooks(text_model: cs.HookedModel) -> Iterator[None]:
    yield
    assert text_model.active_hooks() == []


def test_sources_are_named_and_described(sources: dict[str, FeatureSource]) -> None:
    assert list(sources) == [HOOK, f"{HOOK}#2", "transcoder.L0", "transcoder.L1"]
    assert sources["transcoder.L1"].to_json() == {
        "name": "transcoder.L1",
        "kind": "transcoder",
        "layer": 1,
        "hook": "blocks.1.ln2.hook_normalized",
        "d_sae": 24,
    }
    assert sources[HOOK].layer == 1 and sources[HOOK].kind == "sae"
    with pytest.raises(ServeNotFoundError, match=r"no feature source 'x'; the sources are blocks\.1\.hook_resid_pre, "):
        source_named(sources, "x")


@pytest.mark.parametrize("name", [HOOK, "transcoder.L1"])
def test_token_features_are_the_encoding_of_the_cached_activation(
    text_model: cs.HookedModel, sources: dict[str, FeatureSource], name: str
) -> None:
    source = sources[name]
    view = token_features_view(text_model, source, PROMPT, top_k=3)
    tokens = text_model.to_tokens(PROMPT)
    with torch.no_grad():
        x = text_model.cache_activations(tokens, source.hook)[source.hook][0]
    acts = source.sae.encode(x)
    if source.sae.cfg.exclude_bos:  # the SAE's: BOS stays at zero; the random transcoders' were trained with it
        acts[0] = 0
    assert view.tokens == text_model.to_str_tokens(PROMPT)
    assert (view.top[0] == []) == (name == HOOK)
    for pos in range(tokens.shape[1]):
        values, ids = acts[pos].topk(3)
        expected = [(int(i), float(v)) for v, i in zip(values, ids, strict=True) if v > 0]
        assert [f for f, _ in view.top[pos]] == [f for f, _ in expected]
        assert [a for _, a in view.top[pos]] == pytest.approx([a for _, a in expected], abs=1e-6)
    assert sum(len(row) for row in view.top) > 0
    assert view.to_json()["top"][1][0] == {"feature": view.top[1][0][0], "activation": view.top[1][0][1]}


def test_the_feature_page_logits_are_the_decoder_through_the_unembedding(
    text_model: cs.HookedModel, sources: dict[str, FeatureSource]
) -> None:
    source = sources[HOOK]
    page = feature_page_view(text_model, source, 5, TEXTS, context_size=16)
    effects = source.sae.W_dec[5].float() @ text_model.W_U.detach().float()
    order = effects.argsort(descending=True)
    top = [(str(text_model.to_string(int(i))), float(effects[i])) for i in order[:10]]
    bottom = [(str(text_model.to_string(int(i))), float(effects[i])) for i in order.flip(0)[:10]]
    for shown, expected in ((page.top_logits, top), (page.bottom_logits, bottom)):
        assert [t for t, _ in shown] == [t for t, _ in expected]
        assert [v for _, v in shown] == pytest.approx([v for _, v in expected], abs=1e-6)
    # the histogram counts every non-zero activation; the contexts are the most active, each at its maximum
    assert page.frequency is not None and 0 < page.frequency <= 1
    assert len(page.counts) == 20 and len(page.edges) == 21 and sum(page.counts) > 0
    maxima = [m for _, _, m in page.contexts]
    assert maxima == sorted(maxima, reverse=True) and len(page.contexts) <= 10
    for tokens, values, top_value in page.contexts:
        assert len(tokens) == len(values) == 16 and max(values) == top_value
    data = page.to_json()
    assert data["d_sae"] == 16 and data["histogram"]["counts"] == page.counts


def test_a_feature_page_without_texts_has_only_the_logits(
    text_model: cs.HookedModel, sources: dict[str, FeatureSource]
) -> None:
    page = feature_page_view(text_model, sources["transcoder.L0"], 23, [])
    assert page.frequency is None and page.contexts == [] and page.counts == []
    assert len(page.top_logits) == 10 and page.top_logits[0][1] >= page.top_logits[-1][1]


def test_bad_feature_requests_are_refused(text_model: cs.HookedModel, sources: dict[str, FeatureSource]) -> None:
    with pytest.raises(
        ServeInputError, match=r"feature 16 is out of range: source 'blocks\.1\.hook_resid_pre' has features 0-15"
    ):
        feature_page_view(text_model, sources[HOOK], 16, TEXTS)
    with pytest.raises(ServeInputError, match="feature must be a whole number"):
        feature_page_view(text_model, sources[HOOK], "3", TEXTS)  # type: ignore[arg-type]
    with pytest.raises(ServeInputError, match="the prompt is empty"):
        token_features_view(text_model, sources[HOOK], "")


def test_sources_of_another_model_are_refused(text_model: cs.HookedModel) -> None:
    with pytest.raises(
        ServeInputError, match=r"reads vectors of width 48 at blocks\.1\.hook_resid_pre, but this model's are 32 wide"
    ):
        feature_sources(text_model, [_sae(d_in=48)], None)
    with pytest.raises(ServeInputError, match=r"reads 'blocks\.9\.hook_resid_pre', which this model cannot give"):
        feature_sources(text_model, [_sae(hook="blocks.9.hook_resid_pre")], None)
    with pytest.raises(ServeInputError, match="SAE 0 \\(no hook\\) has no hook_name in its config"):
        feature_sources(text_model, [_sae(hook="")], None)
    other = random_transcoders(text_model)
    other_cfg = type(other.cfg)(**{**other.cfg.to_dict(), "model_fingerprint": "0" * 16})
    with pytest.raises(ServeInputError, match="the transcoders do not fit this model: these transcoders were made"):
        feature_sources(text_model, [], type(other)(other_cfg))


def test_a_transcoder_source_is_its_layer_as_an_sae(text_model: cs.HookedModel) -> None:
    tc = random_transcoders(text_model, d_sae=24)
    source = feature_sources(text_model, [], tc)["transcoder.L0"]
    assert torch.equal(source.sae.W_enc, layer_as_sae(tc, 0).W_enc)
