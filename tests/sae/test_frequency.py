"""Latent frequencies over an activation store: counted by definition, window recorded, bad stores refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import circuitscope as cs
from circuitscope import sae as S  # noqa: N812
from tests.sae.conftest import TEXT

HOOK = "blocks.0.hook_resid_post"


def _sae(d_in: int, d_sae: int) -> S.SAE:
    sae = S.create_sae(S.SAEConfig(architecture="relu", d_in=d_in, d_sae=d_sae, hook_name=HOOK, exclude_bos=False))
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d_in, d_sae, generator=torch.Generator().manual_seed(0)))
        sae.b_enc.fill_(-2.0)  # latents silent on most rows
        sae.b_enc[: d_sae // 4] = -1e4  # a quarter can never fire
        sae.b_enc[d_sae // 4 : d_sae // 2] = -7.0  # rare: some fire in 3,000 rows but not in the first 1,000
    return sae


def test_store_frequencies_equal_the_definition(tmp_path: Path) -> None:
    x = torch.randn(3000, 6, generator=torch.Generator().manual_seed(1))
    store = S.write_store(x, tmp_path / "acts", hook=HOOK, tokens_per_shard=700)
    sae = _sae(6, 40)
    freq = S.store_frequencies(sae, store, batch_size=256)
    expected = (sae.encode(x) > 0).float().mean(0)
    torch.testing.assert_close(freq.frequency, expected)  # counts over batches of 256 / n: float32 division
    assert freq.n_tokens == 3000 and freq.source == str(tmp_path / "acts")
    assert freq.dead_fraction == pytest.approx(float((expected == 0).float().mean()))
    assert 0 < freq.dead_fraction < 1  # the planted SAE has both dead and live latents
    # a shorter window counts the first rows only, and can only find more dead latents
    short = S.store_frequencies(sae, store, max_tokens=1000, batch_size=256)
    torch.testing.assert_close(short.frequency, (sae.encode(x[:1000]) > 0).float().mean(0))  # as above
    assert short.n_tokens == 1000 and short.dead_fraction > freq.dead_fraction >= 0.25
    counts, edges = freq.histogram()
    assert int(counts.sum()) == int((expected > 0).sum()) and edges.shape == (33,)


def test_evaluation_takes_its_dead_fraction_from_the_given_window(tiny_model: cs.HookedModel, tmp_path: Path) -> None:
    tokens = S.build_contexts(tiny_model, S.Corpus("sonnet", [TEXT]), 24, seed=1).tokens[:4]
    d = tiny_model.cfg.d_model
    sae = _sae(d, 64)
    own = S.evaluate_sae(tiny_model, sae, tokens)
    assert own.frequency_tokens == own.n_tokens and own.frequency_source == "evaluation tokens"
    acts = tiny_model.cache_activations(tokens, HOOK)[HOOK].flatten(0, 1)
    store = S.write_store(acts.repeat(3, 1), tmp_path / "acts", hook=HOOK, tokens_per_shard=100)
    freq = S.store_frequencies(sae, store)
    given = S.evaluate_sae(tiny_model, sae, tokens, frequencies=freq)
    assert given.frequency_tokens == 3 * own.n_tokens and given.dead_fraction == freq.dead_fraction
    # the same rows three times: the same frequencies; everything else is unchanged
    torch.testing.assert_close(given.feature_frequency, own.feature_frequency)  # 3c / 3n vs c / n: <=1 ulp
    assert given.ce_sae == own.ce_sae and given.explained_variance == own.explained_variance
    assert given.to_dict()["frequency_tokens"] == 3 * own.n_tokens


def test_a_store_of_another_hook_or_width_is_refused(tmp_path: Path) -> None:
    sae = _sae(6, 8)
    other = S.write_store(torch.randn(50, 6), tmp_path / "other", hook="blocks.3.hook_resid_post")
    with pytest.raises(S.SAEShapeError, match=r"holds blocks\.3\.hook_resid_post"):
        S.store_frequencies(sae, other)
    wide = S.write_store(torch.randn(50, 7), tmp_path / "wide", hook=HOOK)
    with pytest.raises(S.SAEShapeError, match="width 7"):
        S.store_frequencies(sae, wide)


def test_frequencies_of_another_width_are_refused_by_the_evaluation(tiny_model: cs.HookedModel) -> None:
    sae = _sae(tiny_model.cfg.d_model, 8)
    with pytest.raises(S.SAEShapeError, match="d_sae=8"):
        S.evaluate_sae(
            tiny_model,
            sae,
            torch.ones(1, 4, dtype=torch.long),
            frequencies=S.LatentFrequencies(torch.zeros(5), 10, "x"),
        )
