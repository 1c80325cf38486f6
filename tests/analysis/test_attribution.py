"""Attribution patching: exact where the metric is linear, the derivative of activation patching, and its agreement."""

from __future__ import annotations

import math

import pytest
import torch

from circuitscope import HookedModel, HookNameError, ShapeError
from circuitscope.analysis.attribution import (
    ATTRIBUTION_TARGETS,
    AttributionScores,
    answer_logits,
    attribution_correlation,
    attribution_patching,
    hook_attribution,
)
from circuitscope.analysis.patching import PATCH_TARGETS, PatchingResult, activation_patching
from circuitscope.core.hook_points import HookPoint
from circuitscope.errors import UnsupportedModelError
from circuitscope.report.patching import plot_attribution, plot_attribution_scatter
from circuitscope.tasks import Task, evaluate_metric
from circuitscope.tasks.metrics import MetricName
from tests.tiny_models import TinyModels, random_task


def _task(n: int = 5, seq: int = 8, metric: MetricName = "logit_diff") -> Task:
    return random_task(n, seq, seed=0, corrupt=(2, 3), answer_from_end=(1, 1, 2, 1, 3), metric=metric)


def _mean_metric(
    model: HookedModel, task: Task, tokens: torch.Tensor, hooks: list, clean_logits: torch.Tensor
) -> float:
    rows = torch.arange(len(task))
    logits = model.run_with_hooks(tokens, fwd_hooks=hooks)[rows, task.answer_pos]
    return float(evaluate_metric(task.metric, logits, task.correct, task.incorrect, clean_logits).mean())


@pytest.mark.parametrize("family", ["llama_gqa", "gpt2", "gemma3", "gemma2_softcap"])
@torch.no_grad()
def test_answer_logits_equal_the_full_forward_pass(tiny: TinyModels, family: str) -> None:
    model = tiny.hooked(family)
    task = _task()
    logits, _ = answer_logits(model, task.clean_tokens, task.answer_pos)
    expected = model(task.clean_tokens)[torch.arange(len(task)), task.answer_pos]
    # only the answer rows are unembedded (a smaller GEMM): float32 rounding of logits ~1 (exact here)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["llama_gqa", "gpt2"])
def test_attribution_is_exact_where_the_metric_is_linear(tiny: TinyModels, family: str) -> None:
    """The logit difference is linear in the final normed residual stream, so the first-order estimate of
    patching it at one position is the patching result itself, at every position (zero where no answer is read)."""
    model = tiny.hooked(family)
    task = _task()
    name = "ln_final.hook_normalized"
    attribution = hook_attribution(model, task, [name])
    assert attribution.effects[name].shape == (task.seq_len, model.cfg.d_model)
    estimate = attribution.effects[name].sum(-1)
    with torch.no_grad():
        _, clean = model.run_with_cache(task.clean_tokens, names=name)
        rows = torch.arange(len(task))
        clean_logits = model(task.clean_tokens)[rows, task.answer_pos]
        corrupted_value = _mean_metric(model, task, task.corrupted_tokens, [], clean_logits)
        assert attribution.corrupted_value == pytest.approx(corrupted_value, abs=1e-5)
        for p in range(task.seq_len):

            def patch(x: torch.Tensor, hook: HookPoint, p: int = p) -> torch.Tensor:
                x = x.clone()
                x[:, p] = clean[name][:, p]
                return x

            patched = _mean_metric(model, task, task.corrupted_tokens, [(name, patch)], clean_logits)
            assert float(estimate[p]) == pytest.approx(patched - corrupted_value, abs=2e-5), f"position {p}"
    assert float(estimate.abs().sum()) > 1e-2  # the answer positions do matter
    # before the answer, clean and corrupted activations are one causal computation: the difference is exactly 0
    torch.testing.assert_close(
        estimate[: int(task.answer_pos.min())], torch.zeros(int(task.answer_pos.min())), atol=0, rtol=0
    )
    assert model.active_hooks() == []


def test_the_probability_metric_is_not_linear_there(tiny: TinyModels) -> None:
    """The same comparison fails for a non-linear metric: the exactness above is a property, not a tautology."""
    model = tiny.hooked("llama_gqa")
    task = _task(metric="prob")
    name = "ln_final.hook_normalized"
    estimate = hook_attribution(model, task, [name]).effects[name].sum(-1)
    with torch.no_grad():
        _, clean = model.run_with_cache(task.clean_tokens, names=name)
        clean_logits = model(task.clean_tokens)[torch.arange(len(task)), task.answer_pos]
        corrupted_value = _mean_metric(model, task, task.corrupted_tokens, [], clean_logits)
        p = task.seq_len - 1

        def patch(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
            x = x.clone()
            x[:, p] = clean[name][:, p]
            return x

        patched = _mean_metric(model, task, task.corrupted_tokens, [(name, patch)], clean_logits)
    assert abs(float(estimate[p]) - (patched - corrupted_value)) > 1e-6


def _interpolate(target: str, layer: int, item: tuple[int, ...], eps: float, clean: torch.Tensor):
    """A hook moving one component of ``target`` a fraction ``eps`` of the way from corrupted to clean."""

    def hook(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        x = x.clone()
        if target in ("resid_pre", "attn_out", "mlp_out"):
            (p,) = item
            x[:, p] += eps * (clean[:, p] - x[:, p])
        elif target == "head_out_by_pos":
            h, p = item
            x[:, p, h] += eps * (clean[:, p, h] - x[:, p, h])
        elif target == "pattern":
            (h,) = item
            x[:, h] += eps * (clean[:, h] - x[:, h])
        elif target == "neuron":
            (n,) = item
            x[..., n] += eps * (clean[..., n] - x[..., n])
        else:
            (h,) = item
            x[:, :, h] += eps * (clean[:, :, h] - x[:, :, h])
        return x

    return hook


def _kl64(logits: torch.Tensor, clean_logits: torch.Tensor) -> float:
    """The mean KL metric in float64 (the library's metric runs in float32, too coarse for finite differences)."""
    clean_logp = clean_logits.double().log_softmax(-1)
    return float((clean_logp.exp() * (clean_logp - logits.double().log_softmax(-1))).sum(-1).mean())


_HOOKS = {
    "resid_pre": "hook_resid_pre", "attn_out": "hook_attn_out", "mlp_out": "hook_mlp_out", "head_out": "attn.hook_z",
    "head_out_by_pos": "attn.hook_z", "q": "attn.hook_q", "k": "attn.hook_k", "v": "attn.hook_v",
    "pattern": "attn.hook_pattern", "neuron": "mlp.hook_post",
}  # fmt: skip


@pytest.mark.parametrize("family", ["llama_gqa", "gpt2"])
def test_attribution_is_the_derivative_of_activation_patching(tiny: TinyModels, family: str) -> None:
    """For every target, the estimate is d/d eps of the metric when one component moves eps of the way from its
    corrupted to its clean value (central finite differences in float64): checks gradients and every reduction."""
    model = HookedModel(tiny.hf(family).double())
    task = _task(metric="kl")
    result = attribution_patching(model, task)
    rows = torch.arange(len(task))
    eps = 1e-3
    picks: dict[str, tuple[int, tuple[int, ...]]] = {
        "resid_pre": (1, (2,)), "attn_out": (0, (5,)), "mlp_out": (1, (2,)), "head_out": (0, (1,)),
        "head_out_by_pos": (1, (3, 2)), "q": (1, (2,)), "k": (1, (1,)), "v": (0, (1,)), "pattern": (1, (0,)),
        "neuron": (0, (7,)),
    }  # fmt: skip
    with torch.no_grad():
        clean_logits = model(task.clean_tokens)[rows, task.answer_pos]
        for target, (layer, item) in picks.items():
            name = f"blocks.{layer}.{_HOOKS[target]}"
            _, cache = model.run_with_cache(task.clean_tokens, names=name)
            values = []
            for sign in (1, -1):
                hook = _interpolate(target, layer, item, sign * eps, cache[name])
                logits = model.run_with_hooks(task.corrupted_tokens, fwd_hooks=[(name, hook)])[rows, task.answer_pos]
                values.append(_kl64(logits, clean_logits))
            derivative = float(values[0] - values[1]) / (2 * eps)
            scores = result[target]
            estimate = float(scores.raw[(layer, *item)]) - scores.corrupted_value
            assert estimate == pytest.approx(derivative, rel=1e-4, abs=2e-6), target


@pytest.mark.parametrize("family", ["llama_gqa", "gpt_neox"])
def test_attribution_has_patching_shapes_and_correlates_with_it(tiny: TinyModels, family: str) -> None:
    model = tiny.hooked(family)
    task = _task()
    result = attribution_patching(model, task)
    assert set(result.targets) == set(ATTRIBUTION_TARGETS)
    assert result["neuron"].scores.shape == (model.cfg.n_layers, model.cfg.d_mlp)
    assert result["neuron"].axes == ("layer", "neuron")
    for target in (t for t in PATCH_TARGETS if t != "mixer_out"):  # these families have no state-space mixer
        patching = activation_patching(model, task, target)  # type: ignore[arg-type]  # a parametrized str for the Literal option
        scores = result[target]
        assert scores.scores.shape == patching.scores.shape and scores.axes == patching.axes, target
        assert scores.labels == patching.labels
        assert scores.clean_value == pytest.approx(patching.clean_value, abs=1e-5)
        assert scores.corrupted_value == pytest.approx(patching.corrupted_value, abs=1e-5)
        corr = attribution_correlation(scores, patching)
        assert corr.n == patching.scores.numel()
        # Spearman is loose: positions after a prompt's answer are exact zeros in one and rounding noise in the other
        assert corr.pearson > 0.9 and corr.spearman > 0.5, (target, corr.pearson, corr.spearman)
    # normalisation: the scores are the estimated change over (clean - corrupted)
    s = result["head_out"]
    torch.testing.assert_close(  # normalise() is this very expression
        s.scores, (s.raw - s.corrupted_value) / (s.clean_value - s.corrupted_value), atol=0, rtol=0
    )
    assert model.active_hooks() == []


def test_a_subset_of_targets_equals_the_same_targets_of_the_full_run(tiny: TinyModels) -> None:
    model = tiny.hooked("gemma3")
    task = _task()
    full = attribution_patching(model, task)
    part = attribution_patching(model, task, ["head_out", "mlp_out"])
    assert set(part.targets) == {"head_out", "mlp_out"}
    # fewer targets, fewer hooks in the backward graph: gradients summed in another order (measured 3e-8 on ~0.15)
    torch.testing.assert_close(part["head_out"].raw, full["head_out"].raw)
    with pytest.raises(KeyError, match="was not computed"):
        part["neuron"]


def _fake(target: str, values: list[float], kind: type) -> object:
    scores = torch.tensor(values).view(1, -1)
    common = dict(target=target, scores=scores, raw=scores, axes=("layer", "head"), labels={}, metric="logit_diff",
                  clean_value=1.0, corrupted_value=0.0)  # fmt: skip
    if kind is PatchingResult:
        return PatchingResult(**common, tokens=torch.zeros(1, 1, dtype=torch.long))  # type: ignore[arg-type]  # result fields passed through as a dict of objects
    return AttributionScores(**common)  # type: ignore[arg-type]  # result fields passed through as a dict of objects


def test_correlations_against_hand_computed_values() -> None:
    a = _fake("head_out", [1.0, 2.0, 3.0, 4.0], AttributionScores)
    monotone = _fake("head_out", [1.0, 4.0, 9.0, 100.0], PatchingResult)
    corr = attribution_correlation(a, monotone)  # type: ignore[arg-type]  # _fake returns object (one helper for both result types)
    assert corr.spearman == pytest.approx(1.0)
    x, y = torch.tensor([1.0, 2, 3, 4]), torch.tensor([1.0, 4, 9, 100])
    expected = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()).norm() * (y - y.mean()).norm()))
    assert corr.pearson == pytest.approx(expected, rel=1e-6) and corr.pearson < 0.95
    ties = attribution_correlation(a, _fake("head_out", [0.0, 0.0, 1.0, 1.0], PatchingResult))  # type: ignore[arg-type]  # _fake returns object (one helper for both result types)
    # ranks (0.5, 0.5, 2.5, 2.5) against (0, 1, 2, 3): Pearson of those = 0.894...
    assert ties.spearman == pytest.approx(2 / math.sqrt(5), rel=1e-6)
    flat = attribution_correlation(a, _fake("head_out", [2.0] * 4, PatchingResult))  # type: ignore[arg-type]  # _fake returns object (one helper for both result types)
    assert math.isnan(flat.pearson)
    with pytest.raises(ShapeError, match="comparing attribution"):
        attribution_correlation(a, _fake("q", [1.0] * 4, PatchingResult))  # type: ignore[arg-type]  # _fake returns object (one helper for both result types)
    assert plot_attribution_scatter(corr) is not None


def test_plots_build(tiny: TinyModels) -> None:
    model = tiny.hooked("llama_gqa")
    result = attribution_patching(model, _task(), ["head_out_by_pos", "resid_pre"])
    fig = plot_attribution(result["head_out_by_pos"])
    assert "Attribution patching" in fig.layout.title.text  # type: ignore[attr-defined]  # plotly's layout attributes are untyped
    assert plot_attribution(result["resid_pre"]) is not None


def test_bad_requests_are_refused(tiny: TinyModels) -> None:
    model = tiny.hooked("llama_gqa")
    task = _task()
    with pytest.raises(HookNameError, match="closest valid names"):
        hook_attribution(model, task, ["blocks.0.attn.hook_zz"])
    with pytest.raises(ShapeError, match="unknown attribution target"):
        attribution_patching(model, task, ["heads"])  # type: ignore[list-item]  # the bad input under test
    with pytest.raises(HookNameError, match="matches no hook"):
        hook_attribution(model, task, ["blocks.*.hook_nothing"])
    frozen = HookedModel(tiny.hf("gpt2").requires_grad_(False))
    assert (
        hook_attribution(frozen, task, ["blocks.1.hook_resid_pre"]).effects["blocks.1.hook_resid_pre"].abs().sum() > 0
    )
    with pytest.raises(ShapeError, match="does not reach"):  # a learned position embedding is not on the token path
        hook_attribution(frozen, task, ["hook_pos_embed"])
    encoder = tiny.hooked("bert")
    with pytest.raises(UnsupportedModelError, match="causal LM"):
        attribution_patching(encoder, task)
    assert model.active_hooks() == []


@pytest.mark.real
def test_attribution_on_gemma_ioi_agrees_with_activation_patching(gemma: HookedModel) -> None:
    from circuitscope.tasks import IOIConfig, ioi_task

    task = ioi_task(gemma, IOIConfig(n_prompts=8, seed=1))
    result = attribution_patching(gemma, task, ["head_out", "mlp_out"])
    assert result.clean_value > result.corrupted_value  # Gemma does IOI
    patching = activation_patching(gemma, task, "head_out")
    corr = attribution_correlation(result["head_out"], patching)
    assert corr.n == gemma.cfg.n_layers * gemma.cfg.n_heads
    assert math.isfinite(corr.pearson) and math.isfinite(corr.spearman)
    assert corr.pearson > 0.3, corr
    assert torch.isfinite(result["mlp_out"].scores).all()
    assert gemma.active_hooks() == []
