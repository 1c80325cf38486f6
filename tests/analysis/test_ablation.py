"""Ablations equal the same intervention written by hand; mean and resample values are the right ones."""

from __future__ import annotations

import pytest
import torch

from circuitscope import HookedModel, HookNameError, ShapeError
from circuitscope.analysis.ablation import (
    Component,
    ablate,
    ablation_values,
    head_ablation_scan,
    heads,
    neurons,
)
from circuitscope.core.hook_points import HookPoint
from circuitscope.report.patching import plot_ablation, plot_ablation_scan
from circuitscope.tasks import Task, evaluate_metric
from circuitscope.tasks.metrics import MetricName
from tests.tiny_models import VOCAB, TinyModels, random_task


def _task(n: int = 5, seq: int = 8, metric: MetricName = "logit_diff", same: bool = False) -> Task:
    return random_task(
        n, seq, seed=5, corrupt=(2, 3), answer_from_end=(1, 1, 2, 1, 3), metric=metric, same_prompts=same
    )


@torch.no_grad()
def _by_hand(model: HookedModel, task: Task, hooks: list) -> torch.Tensor:
    rows = torch.arange(len(task))
    clean_logits = model(task.clean_tokens)[rows, task.answer_pos]
    logits = model.run_with_hooks(task.clean_tokens, fwd_hooks=hooks)[rows, task.answer_pos]
    return evaluate_metric(task.metric, logits, task.correct, task.incorrect, clean_logits)


@pytest.mark.parametrize("family", ["llama_gqa", "gpt2"])
def test_zero_ablating_heads_equals_zeroing_their_output_by_hand(tiny: TinyModels, family: str) -> None:
    model = tiny.hooked(family)
    task = _task(metric="kl")
    result = ablate(model, task, heads([(0, 1), (1, 3), (1, 0)]), "zero")

    def zero(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        x = x.clone()
        x[:, :, [1] if hook.layer == 0 else [3, 0]] = 0
        return x

    expected = _by_hand(model, task, [("blocks.0.attn.hook_z", zero), ("blocks.1.attn.hook_z", zero)])
    # ablate runs this very forward pass (whole batch, the same hooks): bit for bit
    torch.testing.assert_close(result.ablated, expected, atol=0, rtol=0)
    torch.testing.assert_close(result.clean, torch.zeros(len(task)), atol=0, rtol=0)  # KL(p || p): log p - log p = 0
    assert result.ablated_value > 0 and result.change == pytest.approx(result.ablated_value - result.clean_value)
    assert result.components == ["blocks.0.attn.hook_z[1]", "blocks.1.attn.hook_z[3, 0]"]
    assert model.active_hooks() == []


def test_zero_ablating_neurons_and_pattern_heads_by_hand(tiny: TinyModels) -> None:
    model = tiny.hooked("gemma3")
    task = _task()
    result = ablate(model, task, [neurons(1, [3, 7]), Component("blocks.0.attn.hook_pattern", (2,))], "zero")

    def post(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        x = x.clone()
        x[..., [3, 7]] = 0
        return x

    def pattern(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        x = x.clone()
        x[:, 2] = 0
        return x

    expected = _by_hand(model, task, [("blocks.1.mlp.hook_post", post), ("blocks.0.attn.hook_pattern", pattern)])
    torch.testing.assert_close(result.ablated, expected, atol=0, rtol=0)  # the same forward pass as by hand
    assert not torch.allclose(result.ablated, result.clean)  # default tolerances: the ablation moves it by ~0.2


def test_mean_over_identical_prompts_changes_nothing(tiny: TinyModels) -> None:
    model = tiny.hooked("llama_gqa")
    task = _task(same=True)
    components = [*heads([(0, 0), (1, 2)]), neurons(0, range(10)), Component("blocks.1.hook_resid_pre")]
    for reference in (None, task.clean_tokens):
        result = ablate(model, task, components, "mean", reference=reference)
        if reference is None:  # the corrupted prompts differ from the clean ones: the mean moves the metric
            assert not torch.allclose(result.ablated, result.clean, atol=1e-4)  # it moves by ~0.1
        else:  # a mean of n equal activations rounds once or twice (measured 9e-8 on metrics ~0.5)
            torch.testing.assert_close(result.ablated, result.clean, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_mean_values_are_the_reference_means(tiny: TinyModels) -> None:
    model = tiny.hooked("llama_gqa")
    task = _task()
    name = "blocks.0.mlp.hook_post"
    _, ref = model.run_with_cache(task.corrupted_tokens, names=name)
    act = ref[name]
    # per position, over the reference prompts that are real there (the task's prompts are right-padded)
    values = ablation_values(model, task, [neurons(0, [1])], "mean")[name]
    assert values.shape == (1, task.seq_len, model.cfg.d_mlp)
    for p in range(task.seq_len):
        real = task.answer_pos >= p
        # a masked sum over prompts / count vs mean(): another reduction order, ~1 ulp (measured 7e-9 on ~0.1)
        torch.testing.assert_close(values[0, p], act[real, p].mean(0), atol=1e-6, rtol=1e-5)
    # a shorter reference: one mean over every position of every reference prompt
    short = torch.randint(1, VOCAB, (3, 4), generator=torch.Generator().manual_seed(0))
    _, ref_short = model.run_with_cache(short, names=name)
    pooled = ablation_values(model, task, [neurons(0, [1])], "mean", reference=short)[name]
    torch.testing.assert_close(pooled.view(-1), ref_short[name].mean((0, 1)), atol=1e-6, rtol=1e-5)  # as above
    off = ablation_values(model, task, [neurons(0, [1])], "mean", per_position=False)[name]
    real = torch.arange(task.seq_len)[None, :] <= task.answer_pos[:, None]
    torch.testing.assert_close(off.view(-1), act[real].mean(0), atol=1e-6, rtol=1e-5)  # as above: ~1 ulp


@torch.no_grad()
def test_resample_takes_another_prompts_activation_and_is_seeded(tiny: TinyModels) -> None:
    model = tiny.hooked("llama_gqa")
    task = _task(n=2, seq=6, same=False).subset([0, 1])  # both prompts have 6 tokens
    name = "blocks.1.attn.hook_z"
    # two prompts, own reference: prompt 0 must get the corrupted prompt 1's activation and vice versa
    values = ablation_values(model, task, heads([(1, 2)]), "resample")[name]
    _, ref = model.run_with_cache(task.corrupted_tokens, names=name)
    torch.testing.assert_close(values, ref[name][[1, 0]], atol=0, rtol=0)  # the same forward pass, rows swapped
    result = ablate(model, task, heads([(1, 2)]), "resample")

    def swap(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        x = x.clone()
        x[:, :, 2] = ref[name][[1, 0], :, 2]
        return x

    torch.testing.assert_close(result.ablated, _by_hand(model, task, [(name, swap)]), atol=0, rtol=0)  # same pass
    # a bigger pool: the same seed gives the same draw, another seed (almost surely) another one
    big = _task(n=5)
    pool = torch.randint(1, VOCAB, (40, big.seq_len), generator=torch.Generator().manual_seed(1))
    a = ablate(model, big, heads([(0, 1)]), "resample", reference=pool, seed=7)
    b = ablate(model, big, heads([(0, 1)]), "resample", reference=pool, seed=7)
    c = ablate(model, big, heads([(0, 1)]), "resample", reference=pool, seed=8)
    torch.testing.assert_close(a.ablated, b.ablated, atol=0, rtol=0)
    assert not torch.equal(a.ablated, c.ablated)


@pytest.mark.parametrize("method", ["zero", "mean", "resample"])
def test_head_scan_equals_ablating_each_head_alone(tiny: TinyModels, method: str) -> None:
    model = tiny.hooked("gpt_neox")
    task = _task()
    scan = head_ablation_scan(model, task, method, batch_size=15, seed=3)  # type: ignore[arg-type]  # a parametrized str for the Literal option
    assert scan.change.shape == (model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            one = ablate(model, task, heads([(layer, head)]), method, seed=3)  # type: ignore[arg-type]  # a parametrized str for the Literal option
            # the scan stacks prompt x head copies in one batch: a different GEMM shape, float32 rounding
            assert float(scan.raw[layer, head]) == pytest.approx(one.ablated_value, abs=1e-5), (layer, head)
            assert scan.clean_value == pytest.approx(one.clean_value, abs=1e-5)
    torch.testing.assert_close(scan.change, scan.raw - scan.clean_value, atol=0, rtol=0)  # defined so
    assert plot_ablation_scan(scan) is not None
    assert model.active_hooks() == []


def test_normalised_score_and_plot(tiny: TinyModels) -> None:
    model = tiny.hooked("llama_gqa")
    task = _task()
    result = ablate(model, task, Component("blocks.0.hook_resid_pre"), "zero")
    expected = (result.ablated_value - result.corrupted_value) / (result.clean_value - result.corrupted_value)
    assert result.normalised == pytest.approx(expected, rel=1e-5)
    assert "blocks.0.hook_resid_pre" in plot_ablation(result).layout.title.text  # type: ignore[attr-defined]  # plotly's layout attributes are untyped


def test_bad_requests_are_refused(tiny: TinyModels) -> None:
    model = tiny.hooked("llama_gqa")
    task = _task()
    with pytest.raises(HookNameError, match="closest valid names"):
        ablate(model, task, [Component("blocks.0.attn.hook_zz", (1,))])
    with pytest.raises(ShapeError, match="out of range"):
        ablate(model, task, heads([(0, 9)]))
    with pytest.raises(ShapeError, match="unknown ablation method"):
        ablate(model, task, heads([(0, 1)]), "noise")  # type: ignore[arg-type]  # the bad input under test
    with pytest.raises(ShapeError, match="no components"):
        ablate(model, task, [])
    with pytest.raises(ShapeError, match="at least as long"):
        ablate(model, task, heads([(0, 1)]), "resample", reference=torch.ones(3, 2, dtype=torch.long))
    assert model.active_hooks() == []
