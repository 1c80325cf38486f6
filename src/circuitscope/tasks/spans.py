"""Where a task's corruption acts: the words of a clean prompt that its corrupted prompt changes.

Causal tracing corrupts a span of a prompt (``circuitscope trace --task``): for a task pair it is
the stretch of whole words from the first to the last character where the clean and corrupted
prompts differ (``"Mary"`` -> ``"John"``; ``"1732"`` -> ``"1701"``; for IOI's ABC corruption, from
the first name to the last). Writing the replacement in place of that span gives the corrupted
prompt back exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from circuitscope.tasks.task import Task, TaskError

__all__ = ["CorruptionSpan", "corruption_span"]


@dataclass(frozen=True)
class CorruptionSpan:
    """One pair of a task as a prompt, the span its corruption changes, and what replaces it."""

    prompt: str
    """The clean prompt."""
    subject: str
    """The words of the clean prompt that the corruption changes (they start at :attr:`start`)."""
    replacement: str
    """What the corrupted prompt has in their place."""
    start: int
    """Character offset of :attr:`subject` in :attr:`prompt`."""

    @property
    def corrupted(self) -> str:
        """The corrupted prompt: the prompt with the replacement written over the span."""
        return self.prompt[: self.start] + self.replacement + self.prompt[self.start + len(self.subject) :]


def corruption_span(task: Task, index: int) -> CorruptionSpan:
    """The span of pair ``index``'s clean prompt that its corrupted prompt changes, widened to whole words.

    The span is the first occurrence of its text in the prompt (widened to the prompt's start if the
    same text occurs earlier), so a search for it finds this place.
    """
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(task):
        raise TaskError(f"task {task.name!r} has {len(task)} pairs (0..{len(task) - 1}); got pair {index!r}")
    clean, corrupted = task.clean_prompts[index], task.corrupted_prompts[index]
    if clean == corrupted:
        raise TaskError(f"pair {index} of task {task.name!r}: the clean and corrupted prompts are the same text")
    start = 0
    while start < min(len(clean), len(corrupted)) and clean[start] == corrupted[start]:
        start += 1
    tail = 0
    while tail < min(len(clean), len(corrupted)) - start and clean[-1 - tail] == corrupted[-1 - tail]:
        tail += 1
    while start > 0 and clean[start - 1].isalnum():
        start -= 1
    while tail > 0 and clean[len(clean) - tail].isalnum():
        tail -= 1
    if clean.find(clean[start : len(clean) - tail]) != start:
        start = 0
    return CorruptionSpan(
        prompt=clean,
        subject=clean[start : len(clean) - tail],
        replacement=corrupted[start : len(corrupted) - tail],
        start=start,
    )
