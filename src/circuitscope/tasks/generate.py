"""The shared mechanics of the task generators: the config, seeded sampling of pairs, the token checks.

Every generator of :mod:`circuitscope.tasks.library` (greater-than, acronyms, ...) reads its word
lists and templates from one data table, ``tasks/data/task_words.jsonl`` (:func:`task_words`: a line
per list, ``{"task", "list", "words"}``), keeps them to the words that are one token for the model's
tokenizer (:func:`single_tokens`), then samples clean/corrupted pairs from a seeded
:class:`random.Random` with :func:`build_task`, which keeps a pair only if

- the clean and the corrupted prompt tokenize to the same length, and
- both answers are single tokens that the tokenizer would produce right after either prompt
  (``prompt + answer`` tokenizes to ``prompt``'s tokens plus the answer's one token: an answer
  such as ``"F"`` after ``"(NS"`` that would merge into ``"NSF"`` is refused), and differ.

A generator returns ``None`` for a sample it cannot use; :func:`build_task` draws again, and
raises :class:`TaskError` if too few pairs can be made.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar

from circuitscope.errors import TokenizationError
from circuitscope.tasks.task import Task, TaskError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = [
    "MAX_DRAWS_PER_PAIR", "Pair", "TaskConfig", "build_task", "continuation", "either", "require", "single_tokens",
    "single_tokens_in_both_cases", "task_words",
]  # fmt: skip

_T = TypeVar("_T")

MAX_DRAWS_PER_PAIR = 50
"""Samples drawn per pair asked for before a generator gives up (most samples are kept)."""


# A frozen config, one validated field per line: alike in shape to the other configs, on purpose.
@dataclass(frozen=True)
class TaskConfig:
    """How many pairs a task generator makes, and from which seed."""

    n_prompts: int = 32
    """Number of clean/corrupted prompt pairs."""
    seed: int = 0
    """Seed of every random choice (the same seed gives the same prompts)."""

    def __post_init__(self) -> None:
        if isinstance(self.n_prompts, bool) or not isinstance(self.n_prompts, int) or self.n_prompts < 1:
            raise TaskError(f"n_prompts must be an integer >= 1, got {self.n_prompts!r}; ask for at least one pair")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TaskError(f"seed must be an integer, got {self.seed!r}")


@dataclass(frozen=True)
class Pair:
    """One sampled clean/corrupted pair and its answers (text, each one token)."""

    clean: str
    """The prompt the model should complete with ``correct``."""
    corrupted: str
    """The clean prompt with the information that decides the answer changed."""
    correct: str
    """The answer to the clean prompt (with its leading space where the tokenizer has one)."""
    incorrect: str
    """The contrasting answer (for most tasks the answer to the corrupted prompt)."""
    labels: dict[str, str] = field(default_factory=dict)
    """Per-pair annotations kept in :attr:`Task.labels`."""


def single_tokens(model: HookedModel, words: Sequence[str], prefix: str = " ") -> list[str]:
    """The ``words`` that are one token for ``model``'s tokenizer when written after ``prefix``."""
    kept = []
    for word in words:
        try:
            model.to_single_token(prefix + word)
        except TokenizationError:
            continue
        kept.append(word)
    return kept


def single_tokens_in_both_cases(model: HookedModel, words: Sequence[str]) -> list[str]:
    """The ``words`` that are one token for ``model``'s tokenizer (after a space) as written and in lower case."""
    lower = set(single_tokens(model, [w.lower() for w in words]))
    return [w for w in single_tokens(model, words) if w.lower() in lower]


def task_words(task: str) -> dict[str, list[Any]]:
    """The word lists and templates of the built-in task ``task`` by list name (``tasks/data/task_words.jsonl``)."""
    text = resources.files("circuitscope.tasks").joinpath("data").joinpath("task_words.jsonl").read_text("utf-8")
    records = [json.loads(line) for line in text.split("\n") if line.strip()]
    return {r["list"]: r["words"] for r in records if r["task"] == task}


def either(rng: random.Random, sides: tuple[_T, _T]) -> tuple[_T, _T]:
    """One of the two ``sides`` drawn from ``rng``, and the other one."""
    chosen = rng.choice(sides)
    return chosen, sides[1] if chosen == sides[0] else sides[0]


def require(task: str, pools: Mapping[str, tuple[Sequence[object], int]]) -> None:
    """Refuse a tokenizer that leaves fewer words in a pool than the task needs (``{name: (words, minimum)}``)."""
    short = {name: (len(words), least) for name, (words, least) in pools.items() if len(words) < least}
    if short:
        have = ", ".join(f"{n} {name} (needs {least})" for name, (n, least) in short.items())
        raise TaskError(
            f"the {task} task cannot be built for this tokenizer: too few of its words are single tokens ({have}); "
            "use a model whose tokenizer has whole-word tokens, or a JSONL task of your own"
        )


def continuation(model: HookedModel, prompt: str, text: str) -> list[int] | None:
    """The token ids ``text`` adds after ``prompt`` (None if ``prompt + text`` tokenizes ``prompt`` differently)."""
    head = model.tok.encode(prompt)
    whole = model.tok.encode(prompt + text)
    if whole[: len(head)] != head or len(whole) == len(head):
        return None
    return whole[len(head) :]


def _answers_fit(model: HookedModel, pair: Pair) -> bool:
    """Both answers distinct single tokens, each the token the tokenizer adds after either prompt."""
    ids = []
    for answer in (pair.correct, pair.incorrect):
        try:
            token = model.to_single_token(answer)
        except TokenizationError:
            return False
        if any(continuation(model, prompt, answer) != [token] for prompt in (pair.clean, pair.corrupted)):
            return False
        ids.append(token)
    return ids[0] != ids[1]


def build_task(
    model: HookedModel,
    config: TaskConfig,
    name: str,
    sample: Callable[[random.Random], Pair | None],
) -> Task:
    """``config.n_prompts`` pairs drawn by ``sample`` from ``random.Random(config.seed)``, the unusable ones redrawn.

    A pair is kept when its prompts tokenize to equal lengths and its two answers are distinct
    single-token continuations of both prompts; a :class:`TaskError` says so if too few are.
    """
    rng = random.Random(config.seed)
    pairs: list[Pair] = []
    draws = 0
    budget = MAX_DRAWS_PER_PAIR * config.n_prompts
    while len(pairs) < config.n_prompts and draws < budget:
        draws += 1
        pair = sample(rng)
        if pair is None or len(model.tok.encode(pair.clean)) != len(model.tok.encode(pair.corrupted)):
            continue
        if _answers_fit(model, pair):
            pairs.append(pair)
    if len(pairs) < config.n_prompts:
        raise TaskError(
            f"the {name} task: only {len(pairs)} of {config.n_prompts} pairs could be made in {draws} draws "
            "(pairs whose prompts tokenize to equal lengths and whose answers are single tokens); this tokenizer "
            "splits too many of the task's words. Ask for fewer pairs, or use a JSONL task of your own"
        )
    keys = sorted({k for p in pairs for k in p.labels})
    return Task.from_pairs(
        model,
        [p.clean for p in pairs],
        [p.corrupted for p in pairs],
        [p.correct for p in pairs],
        [p.incorrect for p in pairs],
        name=name,
        labels={k: [p.labels.get(k, "") for p in pairs] for k in keys},
    )
