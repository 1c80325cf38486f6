"""The grokking training loss in closed form against the full model's forward through autograd."""

from __future__ import annotations

from typing import cast

import pytest
import torch

from circuitscope.models.toy.modeling import ToyBlock
from circuitscope.toy.grokking import ModularAddition
from circuitscope.toy.grokking_lab import GrokkingConfig, build_grokking_model
from circuitscope.toy.grokking_step import fast_last_loss, fused_loss_applies


def _loss_and_grads(model: torch.nn.Module, loss: torch.Tensor) -> tuple[float, dict[str, torch.Tensor]]:
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return float(loss.detach()), grads


@pytest.mark.parametrize("block_rows", [7, 1000])  # many blocks (the last one short), and one
def test_closed_form_loss_and_gradients_equal_autograd_on_the_full_forward(block_rows: int) -> None:
    task = ModularAddition(11, 0.6, 0)
    model = build_grokking_model(GrokkingConfig(p=11, d_model=16, d_head=4, d_mlp=32, seed=3))
    mlp = cast(ToyBlock, model.blocks[0]).mlp
    with torch.no_grad():  # non-zero biases, so their gradients and the ReLU's mask are exercised
        mlp.W_in.bias.normal_(0, 0.5)
        mlp.W_out.bias.normal_(0, 0.5)
    mask = task.train_mask()
    x, y = task.inputs()[mask], task.labels()[mask]
    assert fused_loss_applies(model, x)
    # the naive reference: every position through the model, cross-entropy at the last
    ref_loss, ref = _loss_and_grads(model, torch.nn.functional.cross_entropy(model(x).logits[:, -1], y))
    loss, grads = _loss_and_grads(model, fast_last_loss(model, x, y, block_rows=block_rows))
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    assert grads.keys() == ref.keys() and len(ref) == len(list(model.parameters()))
    for name in ref:  # float32 sums in another order
        torch.testing.assert_close(grads[name], ref[name], rtol=1e-4, atol=1e-6, msg=name)


def test_other_models_and_inputs_take_autograd() -> None:
    cfg = GrokkingConfig(p=7, d_model=8, d_head=2, d_mlp=16)
    model = build_grokking_model(cfg)
    x = ModularAddition(7, 0.5, 0).inputs()
    y = x[:, 0]
    mixed = x.clone()
    mixed[0, -1] = 0  # the last token is not shared: no tables of one query
    assert not fused_loss_applies(model, mixed)
    torch.testing.assert_close(
        fast_last_loss(model, mixed, y), torch.nn.functional.cross_entropy(model(mixed).logits[:, -1], y)
    )
    gelu = build_grokking_model(cfg)
    gelu.config.act_fn = "gelu"  # what the check reads
    assert not fused_loss_applies(gelu, x)
