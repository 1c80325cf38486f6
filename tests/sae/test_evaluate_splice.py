"""Splicing and evaluation: identity and zero 'SAEs' give CE recovered 1 and 0; the error term restores the output."""

from __future__ import annotations

import pytest
import torch

import circuitscope as cs
from circuitscope import sae as S  # noqa: N812
from circuitscope.report.sae_eval import plot_frequency_histogram
from circuitscope.sae.splice import SAE_CACHE_SUFFIXES
from tests.sae.conftest import TEXT

HOOK = "blocks.0.hook_resid_post"


def _identity(d: int, arch: str = "relu") -> S.SAE:
    """An SAE that reconstructs exactly: ReLU(x) - ReLU(-x) = x with W_dec = [I; -I]."""
    sae = S.create_sae(S.SAEConfig(architecture=arch, d_in=d, d_sae=2 * d, hook_name=HOOK, exclude_bos=False))
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
    return sae


def _zero(d: int) -> S.SAE:
    return S.create_sae(S.SAEConfig(architecture="relu", d_in=d, d_sae=4, hook_name=HOOK, exclude_bos=False))


@pytest.fixture(scope="module")
def tokens(tiny_model: cs.HookedModel) -> torch.Tensor:
    return S.build_contexts(tiny_model, S.Corpus("sonnet", [TEXT]), 24, seed=1).tokens[:8]


def test_identity_recovers_all_and_zero_none(tiny_model: cs.HookedModel, tokens: torch.Tensor) -> None:
    d = tiny_model.cfg.d_model
    ident = S.evaluate_sae(tiny_model, _identity(d), tokens)
    assert ident.ce_loss_recovered == pytest.approx(1.0, abs=1e-4)
    assert ident.ce_loss_recovered_mean_ablation == pytest.approx(1.0, abs=1e-4)
    assert ident.explained_variance == pytest.approx(1.0, abs=1e-6) and ident.kl_sae == pytest.approx(0.0, abs=1e-5)
    assert ident.n_tokens == tokens.numel()
    zero = S.evaluate_sae(tiny_model, _zero(d), tokens)
    assert zero.ce_loss_recovered == pytest.approx(0.0, abs=1e-6)
    assert zero.ce_sae == pytest.approx(zero.ce_zero_ablation, abs=1e-6)
    assert zero.l0 == 0 and zero.dead_fraction == 1.0
    # the clean CE is the model's own next-token loss (one document: no BOS among the targets)
    assert bool((tokens[:, 1:] != 1).all())
    with torch.no_grad():
        logits = tiny_model(tokens)
    ref = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())
    assert ident.ce_clean == pytest.approx(float(ref), rel=1e-4)
    fig = plot_frequency_histogram(ident)
    assert int(sum(fig.data[0].y)) == int((ident.feature_frequency > 0).sum())


def test_ce_loss_recovered_formula() -> None:
    assert S.ce_loss_recovered(5.0, 3.0, 1.0) == pytest.approx(0.5)


def test_keep_error_restores_the_clean_output_and_feeds_gradients(
    tiny_model: cs.HookedModel, tokens: torch.Tensor
) -> None:
    d = tiny_model.cfg.d_model
    sae = S.create_sae(S.SAEConfig(architecture="topk", d_in=d, d_sae=64, k=4, hook_name=HOOK))
    sae.initialize(torch.Generator().manual_seed(0))
    with torch.no_grad():
        clean = tiny_model(tokens)
        spliced = S.run_with_sae(tiny_model, tokens, sae)
        kept = S.run_with_sae(tiny_model, tokens, sae, keep_error=True)
    assert float((spliced - clean).abs().max()) > 1e-3
    torch.testing.assert_close(kept, clean, atol=1e-5, rtol=0)  # x_hat + (x - x_hat) rounds once: 3e-7 on ~1.4
    logits, cache = S.run_with_cache_and_saes(tiny_model, tokens, sae, names=[], keep_error=True, grad=True)
    acts = cache[f"{HOOK}.sae.hook_acts"]
    assert acts.shape == (*tokens.shape, 64) and bool((acts[:, 0] == 0).all())  # BOS left alone
    assert bool(((acts[:, 1:] > 0).sum(-1) <= 4).all())
    torch.testing.assert_close(  # x_hat + (x - x_hat) vs x: one float32 rounding (default tolerances)
        cache[f"{HOOK}.sae.hook_recons"] + cache[f"{HOOK}.sae.hook_error"], cache[f"{HOOK}.sae.hook_input"]
    )
    acts.retain_grad()
    logits[:, -1].logsumexp(-1).sum().backward()
    assert acts.grad is not None and bool(acts.grad.abs().sum() > 0)
    assert tiny_model.active_hooks() == []


def test_cache_with_sae_also_holds_model_activations(tiny_model: cs.HookedModel, tokens: torch.Tensor) -> None:
    sae = _identity(tiny_model.cfg.d_model)
    _, cache = S.run_with_cache_and_saes(tiny_model, tokens, sae, names="blocks.1.hook_resid_post")
    assert set(cache) == {"blocks.1.hook_resid_post"} | {f"{HOOK}.{s}" for s in SAE_CACHE_SUFFIXES}


def test_mismatched_sae_is_a_clear_error(tiny_model: cs.HookedModel, tokens: torch.Tensor) -> None:
    wrong = S.create_sae(S.SAEConfig(architecture="relu", d_in=7, d_sae=8, hook_name=HOOK))
    with pytest.raises(S.SAEShapeError, match="d_in=7"):
        S.run_with_sae(tiny_model, tokens, wrong)
    with pytest.raises(S.SAEShapeError, match="d_in=7"):
        S.evaluate_sae(tiny_model, wrong, tokens)
    missing = S.create_sae(S.SAEConfig(architecture="relu", d_in=32, d_sae=8, hook_name="blocks.9.hook_resid_post"))
    with pytest.raises(cs.HookNameError):
        S.run_with_sae(tiny_model, tokens, missing)
    assert tiny_model.active_hooks() == []
