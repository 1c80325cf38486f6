"""Direct logit attribution adds up; the logit lens ends at the model's own logits."""

from __future__ import annotations

import pytest
import torch

from circuitscope.analysis._logit_lens import logit_lens
from circuitscope.analysis.dla import direct_logit_attribution
from circuitscope.report.dla import plot_heads, plot_layers
from circuitscope.report.logit_lens import plot_logit_lens
from circuitscope.tasks import Task
from tests.tiny_models import TinyModels, random_task

# Scaled logits (Cohere, Granite), an LM-head bias (Phi, GPT-J), output norms (OLMo 2), a fused MLP (Phi-3), OPT
DENSE = ["cohere", "granite", "phi", "gptj", "opt", "olmo2", "phi3"]


def _task() -> Task:
    return random_task(4, 7, seed=0, corrupt=None, answer_from_end=[1, 2, 1, 3])


@pytest.mark.parametrize(
    "family", ["llama_gqa", "gpt2", "gpt_neox", "gemma", "gemma3", "gemma2_softcap", "qwen2", *DENSE]
)
def test_contributions_sum_to_the_logit_difference(tiny: TinyModels, family: str) -> None:
    model = tiny.hooked(family)
    result = direct_logit_attribution(model, _task())
    # the bias is added in float64 there, in float32 here: <=1 ulp apart (default float32 tolerances)
    torch.testing.assert_close(result.components.sum() + result.bias, torch.tensor(result.pre_softcap_total))
    if family != "gemma2_softcap":  # softcapping bends the last step; elsewhere the sum is the logit diff
        assert result.pre_softcap_total == pytest.approx(result.total, abs=1e-5)
    else:
        assert abs(result.pre_softcap_total - result.total) > 1e-6
    # per-head / per-neuron terms summed vs the whole output attributed: float32 rounding (measured 4e-8 on ~0.3)
    torch.testing.assert_close(result.heads.sum(1) + result.head_bias, result.attn, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(result.neurons.sum(1) + result.neuron_bias, result.mlp, atol=1e-5, rtol=1e-4)
    top = result.top_neurons(3)
    assert len(top) == 3 and abs(top[0][2]) >= abs(top[-1][2])
    assert plot_heads(result) is not None and plot_layers(result) is not None


@pytest.mark.parametrize("family", ["llama_gqa", "gpt2", "gemma2_softcap", "cohere", "granite"])
def test_logit_lens_ends_at_the_models_logits(tiny: TinyModels, family: str) -> None:
    model = tiny.hooked(family)
    task = _task()
    result = logit_lens(model, task, k=3)
    assert result.layers[-1] == "final" and len(result.layers) == model.cfg.n_layers + 1
    rows = torch.arange(len(task))
    logits = model(task.clean_tokens)[rows, task.answer_pos]
    expected = (logits[rows, task.correct] - logits[rows, task.incorrect]).mean()
    # the lens' last entry goes through the final norm with its frozen scale: float32 rounding of ~0.4
    torch.testing.assert_close(result.logit_diff[-1], expected, atol=1e-5, rtol=1e-5)
    assert result.top_probs.shape == (len(result.layers), int(task.answer_pos[0]) + 1, 3)
    assert plot_logit_lens(result) is not None


@pytest.mark.parametrize(
    "family", ["llama_gqa", "gpt2", "gpt_neox", "gemma3", "gemma2_softcap", "qwen2", "cohere", "cohere2", "granite"]
)
@torch.no_grad()
def test_unembed_resid_is_the_models_own_logits(tiny: TinyModels, family: str) -> None:
    """``HookedModel.unembed_resid`` (logit lens, attribution, replay) of the last residual: the forward logits,
    scaled as the model scales them (Cohere's ``logit_scale``, Granite's ``logits_scaling``)."""
    model = tiny.hooked(family)
    tokens = _task().clean_tokens
    last, normed = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post", "ln_final.hook_normalized"
    logits, cache = model.run_with_cache(tokens, names=[last, normed])
    assert torch.equal(model.unembed_resid(cache[last]), logits)
    assert torch.equal(model.unembed_resid(cache[normed], normed=True), logits)
