"""n-digit addition as a token task, its carries, and the per-digit loss the lab tracks.

A problem ``a + b`` of two n-digit numbers is the token sequence::

    a_{n-1} ... a_0  +  b_{n-1} ... b_0  =  c_0 c_1 ... c_n        (digits 0-9, "+" = 10, "=" = 11)

The operands are written most significant digit first, as people write them; the answer least
significant digit first (``c_0`` is the units, ``c_n`` the final carry), the order in which the
carries are computed (Lee et al. 2023, "Teaching arithmetic to small transformers", found the
reversed answer far easier to learn). The model reads every token but the last and predicts answer
digit ``k`` at the position before it; column ``k`` of the sum has a **carry in** when the columns
below it overflow (for the final digit ``c_n`` the carry in *is* the digit).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Int

from circuitscope.toy.errors import LabConfigError

__all__ = [
    "EQUALS",
    "PLUS",
    "AdditionProblems",
    "addition_problems",
    "digit_entropy",
    "digit_losses",
    "wrong_carry_answer",
]

PLUS, EQUALS = 10, 11
"""The two non-digit tokens (the vocabulary is 12 tokens)."""


@dataclass(frozen=True)
class AdditionProblems:
    """A batch of problems: the model's inputs, the answer digits and which columns carry in."""

    tokens: Int[torch.Tensor, "batch seq"]
    """Every token of each problem (``3 n + 3``): the model reads ``tokens[:, :-1]``."""
    answer: Int[torch.Tensor, "batch digit"]
    """The ``n + 1`` answer digits, units first."""
    carry_in: Bool[torch.Tensor, "batch digit"]
    """Whether column ``k`` receives a carry from the columns below (column ``n``: the final carry is 1)."""
    n_digits: int

    @property
    def inputs(self) -> Int[torch.Tensor, "batch pos"]:
        return self.tokens[:, :-1]

    @property
    def answer_positions(self) -> range:
        """The input positions whose next token is answer digit 0, 1, ..., n."""
        start = 2 * self.n_digits + 1  # the position of "="
        return range(start, start + self.n_digits + 1)


def addition_problems(n_digits: int, batch: int, generator: torch.Generator) -> AdditionProblems:
    """``batch`` problems with operands drawn uniformly from the n-digit numbers (leading zeros allowed)."""
    if n_digits < 1:
        raise LabConfigError(f"n_digits must be at least 1, got {n_digits}")
    if batch < 1:
        raise LabConfigError(f"batch must be at least 1, got {batch}")
    a = torch.randint(0, 10, (batch, n_digits), generator=generator)  # [batch, n], units first
    b = torch.randint(0, 10, (batch, n_digits), generator=generator)
    answer = torch.zeros(batch, n_digits + 1, dtype=torch.long)
    carry_in = torch.zeros(batch, n_digits + 1, dtype=torch.bool)
    carry = torch.zeros(batch, dtype=torch.long)
    for k in range(n_digits):  # column by column, as on paper
        carry_in[:, k] = carry.bool()
        total = a[:, k] + b[:, k] + carry
        answer[:, k], carry = total % 10, total // 10
    answer[:, n_digits], carry_in[:, n_digits] = carry, carry.bool()
    sep = lambda token: torch.full((batch, 1), token, dtype=torch.long)  # noqa: E731
    tokens = torch.cat([a.flip(1), sep(PLUS), b.flip(1), sep(EQUALS), answer], dim=1)  # operands MSB first
    return AdditionProblems(tokens, answer, carry_in, n_digits)


def digit_losses(logits: torch.Tensor, problems: AdditionProblems, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of each answer digit, ``[n + 1]`` (mean over the problems, or over ``rows`` of them).

    ``logits``: ``[batch, pos, vocab]`` over the inputs (or ``[batch, n + 1, vocab]``, the answer positions only).
    """
    at = logits if logits.shape[1] == problems.n_digits + 1 else logits[:, problems.answer_positions]
    losses = torch.nn.functional.cross_entropy(at.flatten(0, 1).float(), problems.answer.flatten(), reduction="none")
    losses = losses.view(at.shape[0], -1)  # [batch, digit]
    return (losses if rows is None else losses[rows]).mean(0)


def digit_entropy(problems: AdditionProblems) -> torch.Tensor:
    """Entropy (nats) of each answer digit's values over the problems, ``[n + 1]``: the cross-entropy of predicting
    the digit from its frequencies alone, not the operands (about ln 10 for a digit, less for the final carry)."""
    counts = torch.nn.functional.one_hot(problems.answer, 10).sum(0).double()  # [digit, value]
    p = counts / counts.sum(1, keepdim=True)
    return -(p * p.clamp_min(1e-300).log()).sum(1).float()


def wrong_carry_answer(problems: AdditionProblems) -> Int[torch.Tensor, "batch digit"]:
    """Each answer digit as it would be with the opposite carry into its column: ``c_k - 1`` (mod 10) where a carry
    comes in, ``c_k + 1`` where none does (for the final carry digit: ``1 - c_n``; for the units, which never receive
    a carry, ``c_0 + 1``). A model that knows the column's digits but not its carry puts its probability here."""
    return (problems.answer + torch.where(problems.carry_in, -1, 1)) % 10
