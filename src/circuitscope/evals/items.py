"""Prompt-variant evaluation sets: questions with options and an answer, read from JSONL, and the framings.

One object a line::

    {"question": "Is the Earth flat?", "options": ["Yes", "No"], "answer": "No"}

A framing is a template with ``{question}`` (e.g. ``"You are truthful.\\nQ: {question}\\nA:"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from circuitscope.engine.jsonl import json_lines
from circuitscope.errors import CircuitscopeError

__all__ = ["DEFAULT_FRAMINGS", "EvalItem", "EvalSetError", "Framing", "load_eval_items"]


class EvalSetError(CircuitscopeError, ValueError):
    """An evaluation file or framing that is malformed."""


@dataclass(frozen=True)
class EvalItem:
    question: str
    options: list[str]
    answer: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.options) < 2:
            raise EvalSetError(f"question {self.question!r} needs at least two options, got {self.options}")
        if self.answer not in self.options:
            raise EvalSetError(f"question {self.question!r}: answer {self.answer!r} is not one of {self.options}")
        if len(set(self.options)) != len(self.options):
            raise EvalSetError(f"question {self.question!r} repeats an option: {self.options}")


@dataclass(frozen=True)
class Framing:
    name: str
    template: str
    """Contains ``{question}`` once."""

    def __post_init__(self) -> None:
        if self.template.count("{question}") != 1:
            raise EvalSetError(f"framing {self.name!r} must contain '{{question}}' exactly once: {self.template!r}")

    def render(self, question: str) -> str:
        return self.template.replace("{question}", question)


DEFAULT_FRAMINGS = [
    Framing("truthful", "You are a truthful assistant.\nQuestion: {question}\nAnswer:"),
    Framing("friendly and truthful", "You are a friendly and truthful assistant.\nQuestion: {question}\nAnswer:"),
]


def load_eval_items(path: str | Path) -> list[EvalItem]:
    """Read JSONL items; errors name the line."""
    items = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for n, obj in json_lines(lines, lambda n, err: EvalSetError(f"{path}:{n}: not JSON ({err.msg})")):
        if not isinstance(obj, dict) or not {"question", "options", "answer"} <= obj.keys():
            raise EvalSetError(f"{path}:{n}: each line needs 'question', 'options' and 'answer'")
        try:
            items.append(
                EvalItem(
                    str(obj["question"]),
                    [str(o) for o in obj["options"]],
                    str(obj["answer"]),
                    {k: v for k, v in obj.items() if k not in ("question", "options", "answer")},
                )
            )
        except EvalSetError as err:
            raise EvalSetError(f"{path}:{n}: {err}") from err
    if not items:
        raise EvalSetError(f"{path} has no questions")
    return items
