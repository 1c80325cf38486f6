"""Head-ablation importance over text equals the one-full-forward-per-head loop it replaces."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from circuitscope.analysis.head_ablation import head_ablation_importance
from circuitscope.core.hooked_model import HookedModel
from circuitscope.engine.loss import next_token_loss
from circuitscope.errors import ShapeError
from tests.tiny_models import VOCAB, TinyModels


def _naive(model: HookedModel, tokens: torch.Tensor, method: str, start_pos: int) -> tuple[torch.Tensor, float]:
    """One full forward pass (all logits) per ablated head: the definition."""
    logits, cache = model.run_with_cache(tokens, names="blocks.*.attn.hook_z")
    clean = float(next_token_loss(logits, tokens, start_pos))
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        mean_z = cache[f"blocks.{layer}.attn.hook_z"].mean((0, 1))
        for head in range(model.cfg.n_heads):

            def fn(z: torch.Tensor, hook: Any, head: int = head, mean_z: torch.Tensor = mean_z) -> torch.Tensor:
                z = z.clone()
                z[:, :, head] = 0.0 if method == "zero" else mean_z[head]
                return z

            ablated = model.run_with_hooks(tokens, [(f"blocks.{layer}.attn.hook_z", fn)])
            out[layer, head] = float(next_token_loss(ablated, tokens, start_pos)) - clean
    return out, clean


@pytest.mark.parametrize("family", ["gpt2", "llama_gqa", "gemma2_softcap", "gemma3", "gpt_neox"])
@pytest.mark.parametrize("method", ["zero", "mean"])
def test_replayed_batched_ablation_equals_the_naive_loop(tiny: TinyModels, family: str, method: str) -> None:
    model = tiny.hooked(family)
    tokens = torch.randint(1, VOCAB, (3, 10), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected, clean = _naive(model, tokens, method, start_pos=2)
        # all heads of a layer in one pass, and one head per pass (batch_size below one batch)
        for budget in (10_000, 1):
            calls: list[tuple[int, int]] = []
            got = head_ablation_importance(
                model,
                tokens,
                method,  # type: ignore[arg-type]  # a parametrized str for the Literal option
                start_pos=2,
                batch_size=budget,
                on_progress=lambda _stage, done, total, calls=calls: calls.append((done, total)),
            )
            passes = model.cfg.n_layers * (1 if budget > 1 else model.cfg.n_heads)
            assert calls == [(i, passes) for i in range(1, passes + 1)]
            assert got.clean_loss == pytest.approx(clean, abs=1e-5)
            # heads ablated in batched copies vs one by one: float32 rounding of losses ~5 (measured 2.4e-6)
            torch.testing.assert_close(got.loss_increase, expected, atol=2e-5, rtol=1e-4)
    assert expected.abs().max() > 1e-3  # the heads matter, so equality is not trivially 0 == 0
    assert model.active_hooks() == []


def test_bad_arguments_are_refused(tiny: TinyModels) -> None:
    model = tiny.hooked("gpt2")
    tokens = torch.randint(1, VOCAB, (2, 6))
    with pytest.raises(ValueError, match="method"):
        head_ablation_importance(model, tokens, "resample")  # type: ignore[arg-type]  # the bad input under test
    with pytest.raises(ShapeError):
        head_ablation_importance(model, tokens[:, :1])
    with pytest.raises(ValueError, match="batch_size"):
        head_ablation_importance(model, tokens, batch_size=0)
