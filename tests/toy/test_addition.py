"""The addition lab: problems equal integer arithmetic, per-digit losses and head ablations equal naive loops,
phase changes are found where a hand-made curve falls, runs resume bit for bit, bad configs are refused."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import circuitscope as cs
from circuitscope.cli.main import app
from circuitscope.toy.addition import (
    AdditionProblems,
    addition_problems,
    digit_entropy,
    digit_losses,
    wrong_carry_answer,
)
from circuitscope.toy.addition_lab import (
    AdditionConfig,
    AdditionResult,
    _head_effects,
    _held_out_metrics,
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


def test_the_phase_change_is_where_the_loss_falls_below_half_of_the_digits_entropy() -> None:
    steps = [0, 50, 100, 150, 200, 250]
    units = [2.3, 2.2, 2.1, 0.05, 0.9, 0.04]  # falls at 100-150; the spike at 200 and its recovery do not count
    tens = [2.3, 2.3, 0.2, 0.15, 0.1, 0.1]  # falls at 50-100
    flat = [2.3, 2.3, 2.2, 2.3, 2.2, 2.25]  # never learned
    tail = [2.3, 2.3, 0.1, 0.05, 0.01, 0.0001]  # falls at 50-100; a long tail after it does not move that
    carry = [2.5, 0.69, 0.68, 0.3, 0.01, 0.01]  # the final carry: its plateau is H(carry) = 0.69, crossed at 100-150
    curves = torch.tensor([units, tens, flat, tail, carry]).T
    entropy = torch.tensor([2.3, 2.3, 2.3, 2.3, 0.69])
    u, t, f, tl, c = _phase_changes(steps, curves, entropy)
    assert (u.start, u.end, t.start, t.end, f.start, f.end) == (100, 150, 50, 100, None, None)
    assert (tl.start, tl.end, c.start, c.end) == (50, 100, 100, 150)
    assert (u.loss_before, u.loss_after, u.final_loss) == pytest.approx((2.1, 0.05, 0.04))


def test_digit_entropy_is_the_entropy_of_each_digits_values() -> None:
    problems = addition_problems(2, 500, torch.Generator().manual_seed(4))
    entropy = digit_entropy(problems)
    for d in range(3):
        values = problems.answer[:, d].tolist()
        shares = [values.count(v) / len(values) for v in set(values)]
        assert float(entropy[d]) == pytest.approx(-sum(p * math.log(p) for p in shares), rel=1e-5)
    assert float(entropy[0]) == pytest.approx(math.log(10), abs=0.05)  # the units are close to uniform


def test_carry_heads_rank_the_probability_moved_to_the_opposite_carry() -> None:
    nan = float("nan")
    # [layer][head][digit], 1 digit: the units (never carried into) and the final carry
    carry = [[[nan, 0.5], [nan, 0.9], [nan, 0.2]]]
    no_carry = [[[0.3, 0.4], [0.1, 0.1], [0.0, 0.1]]]
    wrong = [[[nan, 0.05], [nan, -0.01], [nan, 0.3]]]
    result = AdditionResult(
        replace(TINY, n_digits=1), [0], [[0.0, 0.0]], [1.0], [], [2.3, 0.7], carry, no_carry, wrong, 1
    )
    # head 2 moves the most (0.3), then head 0 (0.05); head 1 moves none (-0.01): left out even with top=3
    assert result.carry_heads(top=2) == {0: [], 1: [(0, 2), (0, 0)]}
    assert result.carry_heads(top=3)[1] == [(0, 2), (0, 0)]


def test_the_wrong_carry_answer_is_the_sum_with_the_opposite_carry() -> None:
    problems = addition_problems(3, 100, torch.Generator().manual_seed(6))
    wrong = wrong_carry_answer(problems)
    digits = problems.tokens[:, :3].flip(1), problems.tokens[:, 4:7].flip(1)  # units first
    for row in range(100):
        for k in range(1, 3):
            carry = int(problems.carry_in[row, k])
            column = int(digits[0][row, k] + digits[1][row, k])
            assert int(wrong[row, k]) == (column + 1 - carry) % 10  # the column's sum with the carry flipped
        assert int(wrong[row, 3]) == 1 - int(problems.answer[row, 3])


def test_the_checkpoint_metrics_share_one_forward_pass_and_equal_a_direct_one() -> None:
    model = build_addition_model(TINY)
    model.eval()
    test = addition_problems(TINY.n_digits, 40, torch.Generator().manual_seed(5))
    calls = []
    handle = model.register_forward_hook(lambda *_: calls.append(1))
    metrics = _held_out_metrics(test)
    with torch.no_grad():
        losses, accuracy = metrics["digit_loss"](model), metrics["accuracy"](model)
        alone = metrics["accuracy"](model)  # without digit_loss before it: its own pass
        logits = model(test.inputs).logits
    handle.remove()
    assert len(calls) == 3  # digit_loss + accuracy share one pass; accuracy alone one; the direct one
    torch.testing.assert_close(losses, digit_losses(logits, test))
    right = (logits[:, test.answer_positions].argmax(-1) == test.answer).all(1).float().mean()
    assert accuracy == alone == pytest.approx(float(right))


def test_the_default_init_scales_weights_by_their_fan_in() -> None:
    model = build_addition_model(replace(TINY, d_model=64, n_heads=4, d_mlp=256))
    for name, fan_in in (("blocks.0.attn.q.weight", 64), ("blocks.0.mlp.W_out.weight", 256)):
        assert float(model.get_parameter(name).detach().std()) == pytest.approx(fan_in**-0.5, rel=0.1)
    normal = build_addition_model(replace(TINY, init="normal"))
    assert float(normal.get_parameter("blocks.0.attn.q.weight").detach().std()) == pytest.approx(0.02, rel=0.2)


def test_each_head_ablation_equals_a_hooked_forward_pass() -> None:
    model = build_addition_model(TINY)
    model.eval()
    test = addition_problems(TINY.n_digits, 48, torch.Generator().manual_seed(2))
    with torch.no_grad():
        carry, no_carry, wrong = _head_effects(model, test, None)
    hooked = cs.HookedModel(model)
    with torch.no_grad():
        clean, cache = hooked.run_with_cache(test.inputs)
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
                if d == 0:  # the units have no opposite carry
                    assert bool(wrong[layer, head, d].isnan())
                    continue
                at = test.answer_positions[d]
                moved = logits[:, at].softmax(-1) - clean[:, at].softmax(-1)  # [problem, vocab]
                naive = moved.gather(1, wrong_carry_answer(test)[:, d, None]).mean()
                assert float(wrong[layer, head, d]) == pytest.approx(float(naive), abs=1e-6)


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
    [
        ("n_digits", 0, "n_digits must be at least 1"),
        ("d_model", 15, "multiple of n_heads"),
        ("lr", 0.0, "lr"),
        ("init", "xavier", "init must be one of"),
    ],
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
