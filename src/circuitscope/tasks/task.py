"""A task: clean and corrupted prompts of equal token length, correct and incorrect answers, a metric."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from jaxtyping import Int

from circuitscope.errors import CircuitscopeError, TokenizationError
from circuitscope.tasks.metrics import METRICS, MetricName

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["Task", "TaskError"]


class TaskError(CircuitscopeError, ValueError):
    """A task that cannot be run as given (mismatched lengths, answers that are not one token, ...)."""


# Same shape as src/circuitscope/toy/superposition_lab.py:SweepResult on purpose: two unrelated dataclasses of
# tensors, each field with its docstring; there is no logic in them to share.
@dataclass(frozen=True)
class Task:
    """Prompt pairs with answers. Row i of every tensor belongs to pair i.

    Clean and corrupted prompts of a pair tokenize to the same length (so activations line
    up position by position); different pairs may differ in length and are right-padded.
    The answer is predicted at ``answer_pos`` (the last real token of each prompt).
    """

    name: str
    """Short name shown in reports (``ioi``, or the JSONL file's stem)."""
    clean_prompts: list[str]
    """The prompts the model should get right."""
    corrupted_prompts: list[str]
    """The same prompts with the information that matters changed."""
    clean_tokens: Int[torch.Tensor, "batch pos"]
    """Right-padded clean tokens, BOS included."""
    corrupted_tokens: Int[torch.Tensor, "batch pos"]
    """Right-padded corrupted tokens, aligned with ``clean_tokens``."""
    answer_pos: Int[torch.Tensor, " batch"]
    """Position whose logits predict the answer (last real token)."""
    correct: Int[torch.Tensor, " batch"]
    """Token id of the correct answer."""
    incorrect: Int[torch.Tensor, " batch"]
    """Token id of the incorrect answer (the logit difference is correct minus incorrect)."""
    metric: MetricName = "logit_diff"
    """Default metric: ``logit_diff``, ``prob`` (of the correct answer) or ``kl`` (to the clean run)."""
    labels: dict[str, list[str]] = field(default_factory=dict)
    """Optional per-pair annotations (e.g. ``template``, ``io``, ``s``)."""

    def __post_init__(self) -> None:
        n = len(self.clean_prompts)
        if n == 0:
            raise TaskError(f"task {self.name!r} has no prompts")
        if self.metric not in METRICS:
            raise TaskError(f"unknown metric {self.metric!r}; choose one of {sorted(METRICS)}")
        shapes = {t.shape for t in (self.clean_tokens, self.corrupted_tokens)}
        if len(shapes) != 1 or self.clean_tokens.shape[0] != n:
            raise TaskError(f"task {self.name!r}: token tensors {sorted(shapes)} do not match {n} prompts")
        for t in (self.answer_pos, self.correct, self.incorrect):
            if t.shape != (n,):
                raise TaskError(f"task {self.name!r}: per-pair tensors must have shape ({n},), got {tuple(t.shape)}")

    def __len__(self) -> int:
        return len(self.clean_prompts)

    @property
    def seq_len(self) -> int:
        return int(self.clean_tokens.shape[1])

    @property
    def same_length(self) -> bool:
        """All prompts have the same length (positions mean the same thing across pairs)."""
        return bool((self.answer_pos == self.answer_pos[0]).all())

    def subset(self, index: Sequence[int] | slice | Int[torch.Tensor, " rows"]) -> Task:
        """The pairs selected by ``index`` (a slice or a list of rows; negative rows count from the end)."""
        rows = self._rows(index)
        idx = torch.tensor(rows, dtype=torch.long)
        width = int(self.answer_pos[idx].max()) + 1
        return Task(
            name=self.name,
            clean_prompts=[self.clean_prompts[i] for i in rows],
            corrupted_prompts=[self.corrupted_prompts[i] for i in rows],
            clean_tokens=self.clean_tokens[idx, :width],
            corrupted_tokens=self.corrupted_tokens[idx, :width],
            answer_pos=self.answer_pos[idx],
            correct=self.correct[idx],
            incorrect=self.incorrect[idx],
            metric=self.metric,
            labels={k: [v[i] for i in rows] for k, v in self.labels.items()},
        )

    def _rows(self, index: object) -> list[int]:
        """The rows ``index`` selects, each in ``[0, len)``; a clear error for an empty or out-of-range one."""
        n = len(self)
        if isinstance(index, slice):
            rows = list(range(n))[index]
        elif isinstance(index, Sequence | torch.Tensor) and not isinstance(index, str):
            rows = list(index.tolist() if isinstance(index, torch.Tensor) else index)
        else:
            raise TaskError(f"subset takes a slice or a list of row numbers, got {index!r}; e.g. task.subset([0, 2])")
        bad = [r for r in rows if isinstance(r, bool) or not isinstance(r, int) or not -n <= r < n]
        if bad:
            raise TaskError(f"task {self.name!r} has {n} pairs (rows 0..{n - 1}, or -{n}..-1); subset got {bad[:5]!r}")
        if not rows:
            raise TaskError(f"subset {index!r} selects none of the {n} pairs of task {self.name!r}; pick at least one")
        return [r % n for r in rows]

    def with_metric(self, metric: MetricName) -> Task:
        from dataclasses import replace

        return replace(self, metric=metric)

    @classmethod
    def from_pairs(
        cls,
        model: HookedModel,
        clean: Sequence[str],
        corrupted: Sequence[str],
        correct: Sequence[str],
        incorrect: Sequence[str],
        *,
        name: str = "task",
        metric: MetricName = "logit_diff",
        labels: dict[str, list[str]] | None = None,
        where: Sequence[str] | None = None,
    ) -> Task:
        """Tokenize prompt pairs; a pair whose prompts differ in token length, or an answer that
        is not one token, is rejected with an error that shows it (``where`` names each pair's source)."""
        n = len(clean)
        if not (n == len(corrupted) == len(correct) == len(incorrect)):
            raise TaskError(
                f"{len(clean)} clean prompts, {len(corrupted)} corrupted, {len(correct)} correct and "
                f"{len(incorrect)} incorrect answers: give one of each per pair"
            )
        if n == 0:
            raise TaskError("no prompt pairs given")
        rows_clean, rows_corr, correct_ids, incorrect_ids = [], [], [], []
        for i in range(n):
            src = where[i] if where is not None else f"pair {i}"
            a, b = _encode_pair(model, clean[i], corrupted[i], src)
            _check_lengths(model, a, b, src)
            for answer, out in ((correct[i], correct_ids), (incorrect[i], incorrect_ids)):
                out.append(_answer_id(model, answer, src))
            if metric == "logit_diff" and correct_ids[-1] == incorrect_ids[-1]:
                raise TaskError(
                    f"{src}: the correct and incorrect answers are the same token ({correct[i]!r}), so their "
                    "logit difference is always 0; give two different answers"
                )
            rows_clean.append(a)
            rows_corr.append(b)
        pad = model.tok.pad_token_id
        return cls(
            name=name,
            clean_prompts=list(clean),
            corrupted_prompts=list(corrupted),
            clean_tokens=_right_padded(rows_clean, pad),
            corrupted_tokens=_right_padded(rows_corr, pad),
            answer_pos=torch.tensor([len(r) - 1 for r in rows_clean]),
            correct=torch.tensor(correct_ids),
            incorrect=torch.tensor(incorrect_ids),
            metric=metric,
            labels=labels or {},
        )


def _check_lengths(model: HookedModel, clean: list[int], corrupted: list[int], src: str) -> None:
    """Refuse a pair whose prompts tokenize to different lengths, or longer than the model's context."""
    if len(clean) != len(corrupted):
        raise TaskError(
            f"{src}: clean and corrupted prompts tokenize to different lengths ({len(clean)} vs {len(corrupted)}):\n"
            f"  clean:     {model.tok.to_str_tokens(clean)}\n  corrupted: {model.tok.to_str_tokens(corrupted)}\n"
            "Patching compares them position by position; make them the same length."
        )
    if len(clean) > model.cfg.n_ctx:
        raise TaskError(f"{src}: {len(clean)} tokens exceed the model's context of {model.cfg.n_ctx}")


def _right_padded(rows: list[list[int]], pad: int) -> Int[torch.Tensor, "batch pos"]:
    """The token rows in one tensor, each padded on the right with ``pad`` to the longest."""
    out = torch.full((len(rows), max(len(r) for r in rows)), pad, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row)
    return out


def _encode_pair(model: HookedModel, clean: object, corrupted: object, src: str) -> tuple[list[int], list[int]]:
    """Token ids of one clean/corrupted prompt pair (text, or an error naming the pair)."""
    try:
        return model.tok.encode(clean), model.tok.encode(corrupted)  # type: ignore[arg-type]
    except TokenizationError as err:
        raise TaskError(f"{src}: prompt {err}") from err


def _answer_id(model: HookedModel, answer: object, src: str) -> int:
    """The token id of an answer, which is text that is one token (with its leading space, e.g. ' Mary')."""
    if not isinstance(answer, str):
        raise TaskError(
            f"{src}: answers are text that is one token (a str such as ' Mary'), got {type(answer).__name__} "
            f"{answer!r:.40}; for a token id, pass model.to_string(token_id)"
        )
    try:
        return model.to_single_token(answer)
    except TokenizationError as err:
        raise TaskError(f"{src}: answer {err}") from err
