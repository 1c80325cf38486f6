"""The in-context regression lab: GD by hand, the GD construction in linear self-attention, hooks, resumption."""

from __future__ import annotations

import json

import pytest
import torch

from circuitscope.errors import HookNameError
from circuitscope.toy.errors import CheckpointError, LabConfigError
from circuitscope.toy.icl import (
    ICLConfig,
    LinearSelfAttention,
    SoftmaxRegressor,
    best_gd_lr,
    compare_with_gd,
    construction_fit,
    gd_predictions,
    least_squares_predictions,
    sample_tasks,
)
from circuitscope.toy.icl.lab import train_icl_model


def _tasks(batch: int = 64, n: int = 6, d: int = 3, seed: int = 0):
    return sample_tasks(torch.Generator().manual_seed(seed), batch, n, d)


def _gd_construction(d: int, n_layers: int, eta: float) -> LinearSelfAttention:
    model = LinearSelfAttention(d, n_layers)
    with torch.no_grad():
        model.W_KQ.zero_()
        model.W_PV.zero_()
        model.W_KQ[:, 0, :d, :d] = torch.eye(d)
        model.W_PV[:, 0, d, d] = -eta
    return model


def test_gd_steps_by_hand() -> None:
    # d = 1, context (x, y) = (1, 2), (-1, 1), query x = 3: the gradient at w = 0 is -(2*1 + 1*(-1)) / 2 = -0.5
    tokens = torch.tensor([[[1.0, 2.0], [-1.0, 1.0], [3.0, 0.0]]])
    assert torch.allclose(gd_predictions(tokens, 0.5), torch.tensor([0.25 * 3]))
    # second step: w = 0.25, residuals 2 - 0.25 = 1.75 and 1 + 0.25 = 1.25, gradient -(1.75 - 1.25)/2 = -0.25
    assert torch.allclose(gd_predictions(tokens, 0.5, steps=2), torch.tensor([(0.25 + 0.125) * 3]))
    # least squares through the two points: w = (2 - 1) / 2 = 0.5 (minimum-norm solution of x w = y)
    assert torch.allclose(least_squares_predictions(tokens), torch.tensor([1.5]))


def test_line_search_finds_the_closed_form_rate_of_one_step() -> None:
    tasks = _tasks(512)
    step = gd_predictions(tasks.tokens, 1.0)  # one step is linear in the rate: pred = lr * step
    closed = float((step * tasks.targets).sum() / step.pow(2).sum())
    assert best_gd_lr(tasks) == pytest.approx(closed, rel=1e-4)
    two = best_gd_lr(tasks, steps=2)
    loss = lambda lr: float((gd_predictions(tasks.tokens, lr, 2) - tasks.targets).pow(2).mean())  # noqa: E731
    assert loss(two) <= min(loss(two * 0.97), loss(two * 1.03))


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_the_gd_construction_in_linear_self_attention_is_k_steps_of_gd(n_layers: int) -> None:
    tasks, eta = _tasks(), 0.7
    model = _gd_construction(3, n_layers, eta)
    assert torch.allclose(model(tasks.tokens), gd_predictions(tasks.tokens, eta, n_layers), atol=1e-5)
    cosines, rates = construction_fit(model)
    assert cosines == pytest.approx([1.0] * n_layers) and rates == pytest.approx([eta] * n_layers)
    comparison = compare_with_gd(model, tasks, eta, n_layers)
    assert comparison.prediction_mse < 1e-10 and comparison.prediction_cosine == pytest.approx(1.0)
    assert comparison.query_sensitivity_cosine == pytest.approx(1.0, abs=1e-5)
    assert comparison.context_sensitivity_cosine == pytest.approx(1.0, abs=1e-5)
    # the construction's scale may sit in either matrix: the readout is the same, and so is the fit
    with torch.no_grad():
        model.W_KQ.mul_(2.0)
        model.W_PV.mul_(0.5)
    assert construction_fit(model)[0] == pytest.approx([1.0] * n_layers)


def test_hooks_and_cache_on_both_models() -> None:
    tasks = _tasks(8)
    lsa = _gd_construction(3, 1, 0.5)
    _, cache = lsa.run_with_cache(tasks.tokens)
    assert set(cache) == set(lsa.hook_names) and cache["blocks.0.attn.hook_pattern"].shape == (8, 1, 7, 7)
    assert torch.equal(cache["blocks.0.attn.hook_pattern"][..., -1], torch.zeros(8, 1, 7))  # the query is no key
    removed = lsa.run_with_hooks(tasks.tokens, [("blocks.0.hook_attn_out", lambda x, hook: torch.zeros_like(x))])
    assert torch.equal(removed, torch.zeros(8))  # without attention the query's y stays 0
    softmax = SoftmaxRegressor(3, n_layers=2, d_model=16, n_heads=2)
    pred, cache = softmax.run_with_cache(tasks.tokens, "blocks.*.attn.hook_pattern")
    assert sorted(cache) == ["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"]
    pattern = cache["blocks.1.attn.hook_pattern"]  # [batch head query key]
    assert torch.allclose(pattern.sum(-1), torch.ones(8, 2, 7))
    assert torch.equal(pattern[:, :, -1, :-1] > 0, torch.ones(8, 2, 6, dtype=torch.bool))
    assert torch.equal(pattern[:, :, :-1, -1], torch.zeros(8, 2, 6))  # context tokens never read the query
    assert torch.equal(pred, softmax(tasks.tokens))
    with pytest.raises(HookNameError, match="closest valid names"):
        softmax.run_with_hooks(tasks.tokens, [("blocks.0.attn.hook_zz", lambda x, hook: None)])


def test_one_layer_trains_to_one_gd_step() -> None:
    config = ICLConfig(
        d=3, n_context=8, lsa_layers=(1,), lsa_steps=200, lsa_lr=3e-2, batch_size=256, checkpoint_every=200
    )
    test = sample_tasks(torch.Generator().manual_seed(1), 512, 8, 3)
    lr = best_gd_lr(sample_tasks(torch.Generator().manual_seed(2), 512, 8, 3))
    model, trained = train_icl_model(config, "linear", 1, test, lr, 1, threads=1)
    assert trained.metrics["gd_cosine"][0] < 0.5 < 0.99 < trained.metrics["gd_cosine"][-1]
    assert compare_with_gd(model, test, lr, 1).query_sensitivity_cosine > 0.98


@pytest.mark.parametrize("kind", ["linear", "softmax"])
def test_an_interrupted_run_resumes_bit_for_bit(tmp_path, kind) -> None:
    config = ICLConfig(d=2, n_context=4, lsa_steps=6, softmax_steps=6, checkpoint_every=2, eval_tasks=16,
                       softmax_d_model=8, softmax_heads=2, batch_size=16, softmax_batch_size=16)  # fmt: skip
    test = sample_tasks(torch.Generator().manual_seed(1), 16, 4, 2)
    whole, whole_run = train_icl_model(config, kind, 2, test, 0.5, 2, tmp_path / "whole", threads=1)
    short = ICLConfig(**{**config.__dict__, "lsa_steps": 4, "softmax_steps": 4})
    train_icl_model(short, kind, 2, test, 0.5, 2, tmp_path / "cut", threads=1)  # stopped at step 4
    resumed, resumed_run = train_icl_model(config, kind, 2, test, 0.5, 2, tmp_path / "cut", threads=1)
    assert resumed_run.resumed_from == 4 and resumed_run.loss == whole_run.loss
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    other = ICLConfig(**{**config.__dict__, "n_context": 5})
    with pytest.raises(CheckpointError, match="another configuration"):
        train_icl_model(other, kind, 2, test, 0.5, 2, tmp_path / "cut", threads=1)
    assert json.loads((tmp_path / "cut" / "run.json").read_text())["identity"]["task"]["task"] == "icl"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"d": 0}, "d must be at least 1"),
        ({"lsa_layers": ()}, "lsa_layers must be depths"),
        ({"lsa_layers": (1, 1)}, "lists a depth twice"),
        ({"noise": -0.1}, "cannot be negative"),
        ({"softmax_d_model": 30, "softmax_heads": 4}, "multiple of softmax_heads"),
        ({"lsa_lr": 0.0}, "learning rates must be positive"),
    ],
)
def test_a_config_that_cannot_train_is_refused(fields, message) -> None:
    with pytest.raises(LabConfigError, match=message):
        ICLConfig(**fields)
    with pytest.raises(LabConfigError, match="choose one of default, paper"):
        ICLConfig.preset("large")  # type: ignore[arg-type]  # the bad input under test
    assert ICLConfig.preset("paper").lsa_layers == (1, 2, 3, 4, 5)
