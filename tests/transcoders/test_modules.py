"""TranscoderSet and MLPReplacement: exact reproduction of ReLU MLPs, cross-layer sums, refusals."""

from __future__ import annotations

import pytest
import torch

import circuitscope as cs
from circuitscope.errors import CircuitscopeError
from circuitscope.transcoders import (
    MLPReplacement,
    TranscoderConfig,
    TranscoderConfigError,
    TranscoderModelError,
    TranscoderSet,
    input_site_for,
)
from circuitscope.transcoders.replacement import REPLACEMENT_SUFFIXES
from tests.transcoders.conftest import exact_transcoders, relu_gpt2

TOKENS = torch.randint(0, 97, (2, 9), generator=torch.Generator().manual_seed(1))


def test_exact_transcoders_reproduce_the_model(relu_model: cs.HookedModel) -> None:
    # The transcoder computes relu(x @ W_in + b_in) @ W_out + b_out, the products GPT-2's Conv1D computes
    # with addmm: the same terms, summed in a possibly different order, so equal to float32 rounding.
    tc = exact_transcoders(relu_model)
    real, cache = relu_model.run_with_cache(TOKENS, names=["blocks.*.ln2.hook_normalized", "blocks.*.hook_mlp_out"])
    replaced = relu_model(TOKENS, interventions=[MLPReplacement(tc, skip_bos=False)])
    torch.testing.assert_close(replaced, real)
    estimates = tc.reconstruct({layer: cache[tc.input_hook(layer)] for layer in tc.layers})
    for layer, estimate in estimates.items():
        torch.testing.assert_close(estimate, cache[tc.output_hook(layer)])
    # and the replacement really replaces: zero decoders give another model
    with torch.no_grad():
        tc.W_dec[1].zero_()
    assert not torch.allclose(relu_model(TOKENS, interventions=[MLPReplacement(tc, skip_bos=False)]), real)


def test_cross_layer_with_zero_off_diagonal_equals_per_layer(relu_model: cs.HookedModel) -> None:
    per = exact_transcoders(relu_model)
    cross = exact_transcoders(relu_model, "cross_layer")
    assert [t for t, _ in cross.decoders(0)] == [0, 1, 2] and [t for t, _ in per.decoders(0)] == [0]
    assert cross.sources(2) == [0, 1, 2] and per.sources(2) == [2]
    a = relu_model(TOKENS, interventions=[MLPReplacement(per, skip_bos=False)])
    b = relu_model(TOKENS, interventions=[MLPReplacement(cross, skip_bos=False)])
    assert torch.equal(a, b)


def test_cross_layer_estimate_is_the_sum_over_sources(relu_model: cs.HookedModel) -> None:
    cross = exact_transcoders(relu_model, "cross_layer")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for dec in cross.W_dec:
            dec.copy_(torch.randn(dec.shape, generator=g))
    xs = {layer: torch.randn(4, 32, generator=g) for layer in cross.layers}
    out = cross.reconstruct(xs)
    for t in cross.layers:  # naive reference: every source's features through its decoder to t
        ref = cross.decoder_bias(t).clone()
        for s in cross.layers[: t + 1]:
            dec = dict(cross.decoders(s))[t]
            ref = ref + torch.relu(xs[s] @ cross.encoder(s)[0] + cross.encoder(s)[1]) @ dec
        torch.testing.assert_close(out[t], ref)
    with pytest.raises(TranscoderConfigError, match="needs the features of layers"):
        cross.reconstruct({2: xs[2]})


def test_keep_error_gives_the_real_model_and_records(relu_model: cs.HookedModel) -> None:
    tc = exact_transcoders(relu_model)
    with torch.no_grad():
        tc.W_enc.mul_(0.5)  # a poor transcoder: without the error term the output changes
    real = relu_model(TOKENS)
    assert not torch.allclose(relu_model(TOKENS, interventions=[MLPReplacement(tc)]), real, atol=1e-3)
    torch.testing.assert_close(relu_model(TOKENS, interventions=[MLPReplacement(tc, keep_error=True)]), real)
    record: dict[str, torch.Tensor] = {}
    with relu_model.hooks(MLPReplacement(tc).hook_fns(relu_model, record=record)):
        relu_model(TOKENS)
    for layer in tc.layers:
        est, err = record[f"blocks.{layer}.transcoder.hook_estimate"], record[f"blocks.{layer}.transcoder.hook_error"]
        assert record[f"blocks.{layer}.transcoder.hook_acts"].shape == (2, 9, 128)
        assert est.shape == err.shape == (2, 9, 32)
    assert len(record) == len(REPLACEMENT_SUFFIXES) * len(tc.layers)


@pytest.mark.parametrize("architecture", ["topk", "jumprelu"])
def test_activations_are_the_sae_architectures(architecture: str) -> None:
    k = 3 if architecture == "topk" else None
    cfg = TranscoderConfig("per_layer", architecture, 8, 16, 8, (0,), k=k)  # type: ignore[arg-type]
    tc = TranscoderSet(cfg)
    tc.initialize(torch.Generator().manual_seed(0), threshold=0.1)
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(2))
    pre = tc.pre_acts(0, x)
    acts = tc.encode(0, x)
    if architecture == "topk":  # the 3 largest kept (if positive)
        assert bool(((acts > 0).sum(-1) <= 3).all())
        assert torch.equal(acts.topk(3).values, torch.relu(pre.topk(3).values))
    else:
        assert torch.equal(acts, torch.where(pre > 0.1, pre, torch.zeros_like(pre)))


def test_check_refuses_other_models_and_layers(relu_model: cs.HookedModel) -> None:
    tc = exact_transcoders(relu_model)
    tc.check(relu_model)
    other = relu_gpt2()
    with torch.no_grad():
        other.W_E.add_(1.0)
    with pytest.raises(TranscoderModelError, match="made for another model"):
        other(TOKENS, interventions=[MLPReplacement(tc)])
    cfg = TranscoderConfig("per_layer", "relu", 32, 8, 32, (1, 5))
    with pytest.raises(TranscoderModelError, match=r"layers \[5\] do not exist"):
        TranscoderSet(cfg).check(relu_model)
    with pytest.raises(TranscoderModelError, match="no transcoder"):
        tc.input_hook(7)
    assert tc.input_hook(1) == "blocks.1.ln2.hook_normalized" and tc.output_hook(1) == "blocks.1.hook_mlp_out"
    assert input_site_for(relu_model) == "ln2.hook_normalized"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "both"}, "kind must be one of"),
        ({"layers": (2, 1)}, "increasing order"),
        ({"layers": ()}, "increasing order"),
        ({"architecture": "topk"}, "0 < k <= d_sae"),
        ({"architecture": "topk", "k": 99}, "0 < k <= d_sae"),
        ({"k": 4}, "k is for topk"),
        ({"d_sae": 0}, "must be positive"),
    ],
)
def test_config_refuses_bad_values(changes: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"kind": "per_layer", "architecture": "relu", "d_in": 4, "d_sae": 8, "d_out": 4}
    with pytest.raises(TranscoderConfigError, match=message) as info:
        TranscoderConfig(**{**base, "layers": (0, 1), **changes})  # type: ignore[arg-type]
    assert isinstance(info.value, CircuitscopeError)


def test_config_round_trips() -> None:
    cfg = TranscoderConfig("cross_layer", "topk", 4, 8, 4, (0, 2), skip=True, k=2, model_fingerprint="x")
    assert TranscoderConfig.from_dict(cfg.to_dict()) == cfg
