"""Real-model tier: the causal toolkit on Gemma-3-270M with IOI prompts."""

from __future__ import annotations

import pytest
import torch

import circuitscope as cs
from circuitscope.analysis.dla import direct_logit_attribution
from circuitscope.analysis.patching import activation_patching, naive_activation_patching
from circuitscope.tasks import IOIConfig, ioi_task

pytestmark = pytest.mark.real


def test_batched_patching_equals_the_naive_loop_on_a_slice(gemma: cs.HookedModel) -> None:
    task = ioi_task(gemma, IOIConfig(n_prompts=4, seed=1))
    for target in ("head_out", "mlp_out"):
        fast = activation_patching(gemma, task, target, layers=[9, 17])
        slow = naive_activation_patching(gemma, task, target, layers=[9, 17])
        # batched patches vs one forward pass each: another GEMM shape; on this model's residuals (up to 6.6e4)
        # float32 reordering moves logits by up to ~1e-4 (see test_gemma); measured 7.6e-6 on metrics ~3
        torch.testing.assert_close(fast.raw, slow.raw, atol=2e-4, rtol=1e-4)
    assert fast.clean_value > fast.corrupted_value


def test_direct_logit_attribution_adds_up_on_ioi(gemma: cs.HookedModel) -> None:
    task = ioi_task(gemma, IOIConfig(n_prompts=8, seed=2))
    result = direct_logit_attribution(gemma, task)
    assert result.total > 0
    # no final softcap on Gemma 3: the components summed (through the frozen final norm) vs the logit difference,
    # float32 rounding measured 2.4e-6 on ~6; and per-head terms re-added, measured 4.8e-7 on ~4
    assert result.pre_softcap_total == pytest.approx(result.total, abs=1e-4)
    torch.testing.assert_close(result.heads.sum(1) + result.head_bias, result.attn, atol=1e-5, rtol=1e-5)
