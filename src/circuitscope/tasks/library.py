"""The task library: every built-in task by name, and a task spec (a name or a JSONL file) resolved.

``circuitscope circuit --task NAME``, ``circuit-eval``, ``trace`` and ``report task`` take a name of
:data:`TASK_NAMES` or the path of a JSONL file of prompt pairs (:func:`resolve_task`);
:func:`check_task_spec` refuses a bad spec before a model loads. Each built-in task is a seeded
generator of clean/corrupted pairs with single-token answers, filtered for the model's tokenizer
(``docs/tasks.md`` describes them, with the embedded Gemma-3-270M's accuracy on each).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from circuitscope.progress import OnProgress, track
from circuitscope.tasks.accuracy import TaskCheck, task_accuracy
from circuitscope.tasks.acronyms import acronyms_task
from circuitscope.tasks.agreement import verb_agreement_task
from circuitscope.tasks.capitals import capital_after_period_task
from circuitscope.tasks.counting import counting_task
from circuitscope.tasks.email import email_task
from circuitscope.tasks.generate import TaskConfig
from circuitscope.tasks.greater_than import greater_than_task
from circuitscope.tasks.ioi import IOIConfig, ioi_task
from circuitscope.tasks.jsonl import load_jsonl_task
from circuitscope.tasks.pronouns import pronoun_task
from circuitscope.tasks.sentiment import sentiment_task
from circuitscope.tasks.task import Task, TaskError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = [
    "TASK_DESCRIPTIONS", "TASK_NAMES", "TaskCheck", "TaskName", "TaskSurvey", "UnknownTaskError", "check_task_spec",
    "make_task", "resolve_task", "survey_tasks", "task_accuracy",
]  # fmt: skip

TaskName = Literal[
    "ioi", "greater-than", "acronyms", "capital-after-period", "pronoun", "verb-agreement", "sentiment", "counting",
    "email",
]  # fmt: skip
# A Literal with its get_args tuple, the house rule for every set of string options: alike on purpose.
TASK_NAMES: tuple[str, ...] = get_args(TaskName)

TASK_DESCRIPTIONS: dict[str, str] = {
    "ioi": "indirect object: 'When Mary and John went to the store, John gave a drink to' -> ' Mary'",
    "greater-than": "a later year: 'The war lasted from the year 1732 to the year 17' -> a year after 32",
    "acronyms": "an acronym's third letter: 'The National Science Foundation (NS' -> 'F'",
    "capital-after-period": "a capital after a full stop: '... stopped in the evening.' -> ' Then', not ' then'",
    "pronoun": "he or she: 'Mary went to the doctor because' -> ' she'",
    "verb-agreement": "is or are: 'The keys in the garden' -> ' are'",
    "sentiment": "good or bad: 'I loved this film. It was really' -> ' good'",
    "counting": "listed objects counted: 'I bought a pen, a cup and a hat. In total, I bought' -> ' three'",
    "email": "an address from a name: 'Mary Smith's email address is' -> ' mary'",
}
"""One line per task: what it asks, with an example."""

_GENERATORS: dict[str, Callable[[HookedModel, TaskConfig], Task]] = {
    "greater-than": greater_than_task,
    "acronyms": acronyms_task,
    "capital-after-period": capital_after_period_task,
    "pronoun": pronoun_task,
    "verb-agreement": verb_agreement_task,
    "sentiment": sentiment_task,
    "counting": counting_task,
    "email": email_task,
}


def _names() -> str:
    return ", ".join(TASK_NAMES)


def make_task(model: HookedModel, name: TaskName, *, n_prompts: int, seed: int) -> Task:
    """The built-in task ``name`` for ``model``: ``n_prompts`` seeded pairs."""
    if name == "ioi":
        return ioi_task(model, IOIConfig(n_prompts=n_prompts, seed=seed))
    if name not in _GENERATORS:
        raise TaskError(f"unknown task {name!r}: use one of the task names {_names()}")
    return _GENERATORS[name](model, TaskConfig(n_prompts=n_prompts, seed=seed))


class UnknownTaskError(TaskError):
    """A task spec that is neither a built-in task's name nor a file."""


def check_task_spec(spec: str) -> None:
    """Refuse a spec that is neither a task name nor an existing file (no model needed)."""
    if spec in TASK_NAMES or Path(spec).is_file():
        return
    if Path(spec).suffix == ".jsonl":
        raise TaskError(
            f"task file {spec!r} does not exist: give the path of a JSONL file of prompt pairs, or a task name "
            f"({_names()})"
        )
    raise UnknownTaskError(
        f"unknown task {spec!r}: use a task name ({_names()}) or the path of a JSONL file of prompt pairs"
    )


def resolve_task(model: HookedModel, spec: str, *, n_prompts: int, seed: int) -> Task:
    """The task ``spec`` names: a built-in task (``n_prompts`` pairs from ``seed``) or a JSONL file's pairs."""
    check_task_spec(spec)
    if spec in TASK_NAMES:
        return make_task(model, spec, n_prompts=n_prompts, seed=seed)  # type: ignore[arg-type]
    return load_jsonl_task(model, spec)


@dataclass(frozen=True)
class TaskSurvey:
    """Which built-in tasks a model can do: a :class:`TaskCheck` per task, and the tasks its tokenizer cannot build."""

    n_prompts: int
    """Pairs per task."""
    seed: int
    """The seed every task was generated from."""
    checks: list[TaskCheck]
    """One per task that could be built, in the order of :data:`TASK_NAMES`."""
    unavailable: dict[str, str] = field(default_factory=dict)
    """Task name -> why it cannot be built for this model's tokenizer."""

    def to_json(self) -> dict[str, Any]:
        return {
            "n_prompts": self.n_prompts,
            "seed": self.seed,
            "tasks": [c.to_json() for c in self.checks],
            "unavailable": dict(self.unavailable),
        }


def survey_tasks(
    model: HookedModel,
    names: Sequence[TaskName] | None = None,
    *,
    n_prompts: int = 32,
    seed: int = 0,
    batch_size: int = 16,
    on_progress: OnProgress | None = None,
) -> TaskSurvey:
    """Build each task of ``names`` (default: all) for ``model`` and measure it with :func:`task_accuracy`."""
    chosen = list(TASK_NAMES if names is None else names)
    unknown = [n for n in chosen if n not in TASK_NAMES]
    if unknown:
        raise TaskError(f"unknown task(s) {unknown}: use task names from {_names()}")
    checks: list[TaskCheck] = []
    unavailable: dict[str, str] = {}
    for name in track(chosen, "tasks", on_progress):
        try:
            task = make_task(model, name, n_prompts=n_prompts, seed=seed)  # type: ignore[arg-type]
        except TaskError as err:
            unavailable[name] = str(err)
            continue
        checks.append(task_accuracy(model, task, batch_size=batch_size))
    return TaskSurvey(n_prompts=n_prompts, seed=seed, checks=checks, unavailable=unavailable)
