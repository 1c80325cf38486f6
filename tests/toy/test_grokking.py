"""Grokking: the task, the fast forward, restricted/excluded losses on a hand-made table, bad input, report."""

from __future__ import annotations

import math

import pytest
import torch

from circuitscope.report.grokking import grokking_report
from circuitscope.toy.errors import CheckpointError, LabConfigError
from circuitscope.toy.grokking import (
    ModularAddition,
    excluded_loss,
    fast_last_logits,
    key_frequencies,
    key_frequency_part,
    progress_losses,
    restricted_loss,
)
from circuitscope.toy.grokking_lab import GrokkingConfig, build_grokking_model, run_grokking
from tests.browser import open_in_chromium


def test_fast_forward_equals_the_model() -> None:
    task = ModularAddition(11, 0.5, 0)
    model = build_grokking_model(GrokkingConfig(p=11, d_model=16, d_head=4, d_mlp=32))
    x = task.inputs()
    with torch.no_grad():
        # per-token key/value tables and OV on the tables vs the full forward: float32 rounding of logits ~1
        torch.testing.assert_close(fast_last_logits(model, x), model(x).logits[:, -1], rtol=0, atol=1e-5)
    assert task.train_mask().sum() == round(0.5 * 121)
    assert torch.equal(task.labels(), (x[:, 0] + x[:, 1]) % 11)
    # and the gradients the training step takes through it (gathered value rows, the shared last token)
    grads = []
    for forward in (lambda: fast_last_logits(model, x), lambda: model(x).logits[:, -1]):
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(forward(), task.labels()).backward()
        grads.append({name: p.grad for name, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:  # float32 sums in another order
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-6)


def _hand_table(p: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L[a, b, c] = 3 cos(w_2 (a + b - c)) + 0.5 sin(w_1 (a + b)) c/p + noise-free other part."""
    a = torch.arange(p)[:, None, None].double()
    b = torch.arange(p)[None, :, None].double()
    c = torch.arange(p)[None, None, :].double()
    w = lambda k: 2 * math.pi * k / p  # noqa: E731
    key = 3 * torch.cos(w(2) * (a + b - c))  # lies in the span of cos/sin w_2 (a + b) for each c
    other = 0.5 * torch.sin(w(1) * (a + b)) * c / p + 0.2 * torch.cos(w(3) * a) + 0.1 * c
    return key + other, key, other


def test_restricted_and_excluded_loss_equal_their_definitions() -> None:
    p = 13
    table, key, other = _hand_table(p)
    torch.testing.assert_close(key_frequency_part(table, [2]), key)  # a Fourier projection vs the closed form
    labels = ((torch.arange(p)[:, None] + torch.arange(p)[None, :]) % p).reshape(-1)
    const = table.mean((0, 1), keepdim=True)
    expected_restricted = torch.nn.functional.cross_entropy((const + key).reshape(p * p, p), labels)
    assert restricted_loss(table, [2]) == pytest.approx(float(expected_restricted), rel=1e-9)
    mask = ModularAddition(p, 0.3, 0).train_mask()
    expected_excluded = torch.nn.functional.cross_entropy(other.reshape(p * p, p)[mask], labels[mask])
    assert excluded_loss(table, [2], mask) == pytest.approx(float(expected_excluded), rel=1e-9)
    expected = (float(expected_restricted), float(expected_excluded))
    assert progress_losses(table, [2], mask) == pytest.approx(expected, rel=1e-9)  # both from one projection
    norms = torch.full((20,), 0.01)
    norms[[1, 5]] = torch.tensor([1.0, 0.9])
    assert key_frequencies(norms) == [2, 6]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p": 12}, "not prime"),
        ({"train_fraction": 1.0}, "between 0 and 1"),
        ({"train_fraction": 0.0}, "between 0 and 1"),
    ],
)
def test_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(LabConfigError, match=message):
        GrokkingConfig(**kwargs)
    with pytest.raises(LabConfigError):
        GrokkingConfig.preset("huge")


def test_short_run_report_and_resume_guard(tmp_path) -> None:
    cfg = GrokkingConfig(p=7, train_fraction=0.6, d_model=16, d_head=4, d_mlp=32, steps=20, checkpoint_every=10)
    result = run_grokking(cfg, tmp_path / "ck")
    assert result.steps == [0, 10, 20]
    payload = result.to_json()
    assert isinstance(payload["test_loss"], list) and len(payload["test_loss"]) == 3
    assert len(result.restricted_loss) == len(result.excluded_loss) == 3
    assert result.train_loss[-1] < result.train_loss[0]
    page = grokking_report(result).write(tmp_path / "report.html")
    browser = open_in_chromium(page)
    assert browser.console_errors == []
    assert "The paper and this run" in browser.dom
    with pytest.raises(CheckpointError, match="another configuration"):
        run_grokking(
            GrokkingConfig(p=11, train_fraction=0.6, d_model=16, d_head=4, d_mlp=32, steps=20), tmp_path / "ck"
        )
