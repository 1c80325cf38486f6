"""Can the model do a task at all? Its clean accuracy and logit difference, against chance.

:func:`task_accuracy` runs the clean (and corrupted) prompts once and returns a :class:`TaskCheck`:
the fraction of pairs whose correct answer beats the incorrect one, the fraction whose correct
answer is the top-1 token, the mean logit differences, and ``near_chance`` when the accuracy is
no better than a coin toss between the two answers (plus :data:`NEAR_CHANCE_MARGIN`). Reports
print :attr:`TaskCheck.warning` at the top when it is set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch

from circuitscope.core.replay import BlockReplay
from circuitscope.engine.batching import batch_slices
from circuitscope.tasks.metrics import evaluate_metric
from circuitscope.tasks.task import Task, TaskError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["CHANCE", "NEAR_CHANCE_MARGIN", "TaskCheck", "task_accuracy"]

CHANCE = 0.5
"""The accuracy of a guess between the correct and the incorrect answer."""
NEAR_CHANCE_MARGIN = 0.15
"""A clean accuracy below ``CHANCE + NEAR_CHANCE_MARGIN`` counts as near chance (about 1.7 binomial standard
deviations above a coin toss on 32 pairs)."""


@dataclass(frozen=True)
class TaskCheck:
    """How well a model does a task on its clean prompts."""

    task: str
    """The task's name."""
    n_prompts: int
    """Pairs measured."""
    accuracy: float
    """Fraction of clean prompts whose correct answer has a higher logit than the incorrect one."""
    top1: float
    """Fraction of clean prompts whose top-1 next token is the correct answer."""
    logit_diff: float
    """Mean clean logit difference, correct minus incorrect."""
    corrupted_logit_diff: float
    """Mean logit difference on the corrupted prompts (negative when the corruption flips the answer)."""
    chance: float = CHANCE
    """The accuracy of a guess between the two answers."""

    @property
    def near_chance(self) -> bool:
        """The clean accuracy is below ``chance + NEAR_CHANCE_MARGIN``: the model cannot (reliably) do the task."""
        return self.accuracy < self.chance + NEAR_CHANCE_MARGIN

    @property
    def warning(self) -> str | None:
        """What a report says at its top when the model cannot do the task (None when it can)."""
        if not self.near_chance:
            return None
        return (
            f"the model is near chance on the {self.task} task: the correct answer beats the incorrect one on "
            f"{self.accuracy:.0%} of {self.n_prompts} clean prompts (chance {self.chance:.0%}; mean logit difference "
            f"{self.logit_diff:+.2f}). The analysis below explains a behaviour the model does not have; read it "
            "with care, or pick a task it can do (`circuitscope tasks --check`)"
        )

    def to_json(self) -> dict[str, Any]:
        """Every field, then whether the model is near chance and the report's warning."""
        return {**asdict(self), "near_chance": self.near_chance, "warning": self.warning}


@torch.no_grad()
def task_accuracy(model: HookedModel, task: Task, batch_size: int = 16) -> TaskCheck:
    """Clean accuracy, top-1 accuracy and mean logit differences of ``model`` on ``task``.

    ``batch_size`` is the prompts of one forward pass; logits are computed at the answer positions only.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise TaskError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    clean_diff, corrupted_diff, top1 = [], [], []
    for rows in batch_slices(len(task), batch_size):
        positions = task.answer_pos[rows].to(model.device)
        correct, incorrect = task.correct[rows].to(model.device), task.incorrect[rows].to(model.device)
        for tokens, out in ((task.clean_tokens, clean_diff), (task.corrupted_tokens, corrupted_diff)):
            logits = BlockReplay(model, tokens[rows].to(model.device)).logits_at(positions).float()
            out.append(evaluate_metric("logit_diff", logits, correct, incorrect).cpu())
            if tokens is task.clean_tokens:
                top1.append((logits.argmax(-1) == correct).cpu())
    clean, corrupted = torch.cat(clean_diff), torch.cat(corrupted_diff)
    return TaskCheck(
        task=task.name,
        n_prompts=len(task),
        accuracy=float((clean > 0).float().mean()),
        top1=float(torch.cat(top1).float().mean()),
        logit_diff=float(clean.mean()),
        corrupted_logit_diff=float(corrupted.mean()),
    )
