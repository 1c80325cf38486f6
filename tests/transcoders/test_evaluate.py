"""Evaluation: exact transcoders score perfectly, the error terms restore the real model, FVU by hand."""

from __future__ import annotations

import torch

import circuitscope as cs
from circuitscope.transcoders.evaluate import evaluate_transcoders
from circuitscope.transcoders.replacement import MLPReplacement
from tests.transcoders.conftest import exact_transcoders

TOKENS = torch.randint(0, 97, (5, 12), generator=torch.Generator().manual_seed(3))


def test_exact_transcoders_score_perfectly(relu_model: cs.HookedModel) -> None:
    result = evaluate_transcoders(relu_model, exact_transcoders(relu_model), TOKENS, batch_size=2)
    for layer in result.layers:
        assert layer.fvu < 1e-10 and layer.l0 > 0
    assert abs(result.replaced.ce - result.ce_real) < 1e-5
    assert result.replaced.kl < 1e-6 and result.replaced.agreement == 1.0
    assert result.tokens == 60 and result.to_json()["replaced"]["agreement"] == 1.0


@torch.no_grad()
def test_error_terms_restore_the_real_model_and_fvu_by_hand(relu_model: cs.HookedModel) -> None:
    tc = exact_transcoders(relu_model)
    with torch.no_grad():
        tc.W_enc.mul_(0.7)
        tc.b_dec.add_(0.05)
    result = evaluate_transcoders(relu_model, tc, TOKENS, batch_size=2)
    assert result.replaced.kl > 1e-5 and abs(result.replaced.ce - result.ce_real) > 1e-5
    assert result.replaced_with_error.kl < 1e-6 and abs(result.replaced_with_error.ce - result.ce_real) < 1e-5
    assert result.replaced_with_error.agreement == 1.0
    _, cache = relu_model.run_with_cache(TOKENS, names=[tc.input_hook(1), tc.output_hook(1)])
    y = cache[tc.output_hook(1)].reshape(-1, 32).double()
    est = tc.reconstruct({1: cache[tc.input_hook(1)]})[1].reshape(-1, 32).double()
    fvu = float((est - y).pow(2).sum() / (y - y.mean(0)).pow(2).sum())
    assert abs(result.layers[1].fvu - fvu) < 1e-9 * max(1.0, fvu)
    acts = tc.encode(1, cache[tc.input_hook(1)])
    assert abs(result.layers[1].l0 - float((acts > 0).sum(-1).double().mean())) < 1e-9
    dead = float((~(acts > 0).reshape(-1, acts.shape[-1]).any(0)).float().mean())
    assert result.layers[1].dead_fraction == dead
    # the replaced model of the evaluation is the intervention's
    logits = relu_model(TOKENS, interventions=[MLPReplacement(tc)])
    assert int((logits.argmax(-1) == relu_model(TOKENS).argmax(-1)).sum()) == round(result.replaced.agreement * 60) < 60
