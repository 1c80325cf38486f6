"""The addition lab: problems equal integer arithmetic, per-digit losses and head ablations equal naive loops,
phase changes are found where a hand-made curve falls, runs resume bit for bit, bad configs are refused."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import circuitscope as cs
from circuitscope.cli.main import app
from circuitscope.toy.addition import AdditionProblems, addition_problems, digit_losses
from circuitscope.toy.addition_lab import (
    AdditionConfig,
    _head_effects,
    _phase_changes,
    build_addition_model,
    run_addition,
)
from circuitscope.toy.errors import CheckpointError, LabConfigError
from tests.browser import open_in_chromium

TINY = AdditionConfig(
    n_digits=2, d_model=16, n_heads=2, d_mlp=32, steps=20, checkpoint_every=10, batch_size=32, test_size=64
)


def _number(digits: torch.Tensor) -> list[int]:
    """Each row's digits (most significant first) as an integer."""
    return [int("".join(str(int(d)) for d in row)) for row in digits]


def test_problems_are_integer_addition_with_the_carries_of_the_columns() -> None:
    problems = addition_problems(4, 200, torch.Generator().manual_seed(3))
    tokens = problems.tokens
    assert tokens.shape == (200, 3 * 4 + 3) and bool((tokens[:, 4] == 10).all()) and bool((tokens[:, 9] == 11).all())
    a, b = _number(tokens[:, :4]), _number(tokens[:, 5:9])
    total = _number(problems.answer.flip(1))  # the answer is written units first
    assert total == [x + y for x, y in zip(a, b, strict=True)]
    for row, (x, y) in enumerate(zip(a, b, strict=True)):
        for k in range(4):  # a carry comes into column k when the columns below overflow
            below = 10**k
            assert bool(problems.carry_in[row, k]) == ((x % below) + (y % below) >= below)
        assert bool(problems.carry_in[row, 4]) == (x + y >= 10**4)
    assert list(problems.answer_positions) == [9, 10, 11, 12, 13]
    with pytest.raises(LabConfigError, match="n_digits must be at least 1"):
        addition_problems(0, 4, torch.Generator())


def test_digit_losses_equal_a_loop_over_the_digits() -> None:
    problems = addition_problems(3, 16, torch.Generator().manual_seed(0))
    logits = torch.randn(16, problems.inputs.shape[1], 12, generator=torch.Generator().manual_seed(1))
    rows = torch.tensor([0, 3, 5])
    expected = []
    for d, pos in enumerate(problems.answer_positions):
        ce = [float(-logits[r, pos].log_softmax(-1)[problems.answer[r, d]]) for r in rows.tolist()]
        expected.append(sum(ce) / len(ce))
    torch.testing.assert_close(digit_losses(logits, problems, rows), torch.tensor(expected), atol=1e-6, rtol=1e-6)


def test_the_phase_change_is_where_the_log_loss_passes_half_of_its_fall() -> None:
    steps = [0, 50, 100, 150, 200, 250]
    units = [2.3, 2.2, 2.1, 0.05, 0.9, 0.04]  # falls at 100-150; the spike at 200 and its recovery do not count
    tens = [2.3, 2.3, 0.2, 0.15, 0.1, 0.1]  # falls at 50-100
    flat = [2.3, 2.3, 2.2, 2.3, 2.2, 2.25]  # never learned
    curves = torch.tensor([units, tens, flat]).T
    u, t, f = _phase_changes(steps, curves)
    assert (u.start, u.end, t.start, t.end, f.start, f.end) == (100, 150, 50, 100, None, None)
    assert (u.loss_before, u.loss_after, u.final_loss) == pytest.approx((2.1, 0.05, 0.04))


def test_each_head_ablation_equals_a_hooked_forward_pass() -> None:
    model = build_addition_model(TINY)
    model.eval()
    test = addition_problems(TINY.n_digits, 48, torch.Generator().manual_seed(2))
    with torch.no_grad():
        carry, no_carry = _head_effects(model, test, None)
    hooked = cs.HookedModel(model)
    _, cache = hooked.run_with_cache(test.inputs)
    for layer in range(TINY.n_layers):
        mean = cache[f"blocks.{layer}.attn.hook_z"].mean(0, keepdim=True)
        for head in range(TINY.n_heads):

            def ablate(z: torch.Tensor, hook: object, head: int = head, mean: torch.Tensor = mean) -> torch.Tensor:
                z = z.clone()
                z[:, :, head] = mean[:, :, head]
                return z

            with torch.no_grad(), hooked.hooks([(f"blocks.{layer}.attn.hook_z", ablate)]):
                logits = hooked(test.inputs)
            for d in range(TINY.n_digits + 1):
                for grid, want in ((carry, True), (no_carry, False)):
                    rows = (test.carry_in[:, d] == want).nonzero().flatten()
                    if len(rows) == 0:
                        assert bool(grid[layer, head, d].isnan())
                        continue
                    naive = digit_losses(logits, test, rows)[d] - _clean_rows(hooked, test, rows, d)
                    assert float(grid[layer, head, d]) == pytest.approx(float(naive), abs=1e-5)


def _clean_rows(hooked: cs.HookedModel, test: AdditionProblems, rows: torch.Tensor, d: int) -> torch.Tensor:
    """Digit ``d``'s loss of the unablated model on ``rows``."""
    with torch.no_grad():
        return digit_losses(hooked(test.inputs), test, rows)[d]


def test_an_interrupted_run_resumes_bit_for_bit_and_another_config_is_refused(tmp_path: Path) -> None:
    whole = run_addition(TINY, tmp_path / "whole", threads=1)
    run_addition(replace(TINY, steps=10), tmp_path / "split", threads=1)
    resumed = run_addition(TINY, tmp_path / "split", threads=1)
    assert resumed.digit_loss == whole.digit_loss and resumed.accuracy == whole.accuracy
    torch.testing.assert_close(
        torch.tensor(resumed.ablation_carry), torch.tensor(whole.ablation_carry), equal_nan=True, atol=0, rtol=0
    )
    with pytest.raises(CheckpointError):
        run_addition(replace(TINY, n_digits=3), tmp_path / "whole", threads=1)
    payload = json.loads(json.dumps(whole.to_json(), allow_nan=False))  # NaN is null: strict JSON
    assert len(payload["digit_loss"]) == len(whole.steps) and len(payload["digit_loss"][0]) == 3


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("n_digits", 0, "n_digits must be at least 1"), ("d_model", 15, "multiple of n_heads"), ("lr", 0.0, "lr")],
)
def test_configs_that_cannot_train_are_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(LabConfigError, match=message):
        replace(TINY, **{field: value})


def test_the_command_writes_the_report_and_refuses_a_bad_digit_count(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["lab", "addition", "--digits", "0", "--out-dir", str(tmp_path / "bad"), "--json"])
    assert bad.exit_code == 1 and "n_digits must be at least 1" in bad.stdout
    assert not (tmp_path / "bad").exists()  # refused before any work
    out = tmp_path / "lab"
    result = runner.invoke(
        app, ["lab", "addition", "--digits", "1", "--steps", "3", "--threads", "1", "--out-dir", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["steps"][-1] == 3 and set(payload["carry_heads"]) == {"0", "1"}
    page = open_in_chromium(out / "report.html")
    assert page.console_errors == [] and "Phase changes" in page.dom
