"""Subject-relation-object facts for causal tracing, and the set that ships with circuitscope.

The shipped set (``tasks/data/facts.jsonl``) holds well-known facts that the embedded
Gemma-3-270M predicts correctly: the top-1 next token after :attr:`Fact.prompt` is the first
token of :attr:`Fact.object` (checked by ``scripts/check_facts.py``, which wrote the file,
and by the real-model tests). A fact file is JSONL: a header line
``{"format": "circuitscope-facts", "version": 1}``, then one
``{"subject", "relation", "template", "object"}`` object a line; ``template`` holds ``{}``
where the subject goes and ``object`` carries its leading space (``" Paris"``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from circuitscope.tasks.jsonl import read_task_text
from circuitscope.tasks.task import TaskError

__all__ = ["FACTS_FORMAT", "FACTS_VERSION", "Fact", "load_facts"]

FACTS_FORMAT = "circuitscope-facts"
FACTS_VERSION = 1
_KEYS = ("subject", "relation", "template", "object")


@dataclass(frozen=True)
class Fact:
    """One subject-relation-object fact."""

    subject: str
    """The subject as it is written in the prompt (``"The Eiffel Tower"``)."""
    relation: str
    """A short name of the relation (``"located_in_city"``)."""
    template: str
    """The prompt with ``{}`` where the subject goes (``"{} is located in the city of"``)."""
    object: str
    """The expected continuation, with its leading space (``" Paris"``)."""

    def __post_init__(self) -> None:
        if not self.subject or not self.object:
            raise TaskError(f"a fact needs a non-empty subject and object, got {self!r}")
        if self.template.count("{}") != 1:
            raise TaskError(f"a fact's template needs exactly one '{{}}' for the subject, got {self.template!r}")

    @property
    def prompt(self) -> str:
        """The template with the subject filled in."""
        return self.template.replace("{}", self.subject)

    def to_dict(self) -> dict[str, str]:
        return {"subject": self.subject, "relation": self.relation, "template": self.template, "object": self.object}


def _parse(text: str, where: str) -> list[Fact]:
    # JSONL lines end in "\n" only (not splitlines: U+2028 and the like may sit inside a string)
    lines = [(n, line) for n, line in enumerate(text.split("\n"), start=1) if line.strip()]
    if not lines:
        raise TaskError(f"{where}: empty fact file; it needs a header line {{'format': {FACTS_FORMAT!r}, ...}}")
    records: list[tuple[int, Any]] = []
    for number, line in lines:
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError as err:
            raise TaskError(f"{where}:{number}: not valid JSON ({err.msg} at column {err.colno})") from err
    (_, header), body = records[0], records[1:]
    if not isinstance(header, dict) or header.get("format") != FACTS_FORMAT:
        raise TaskError(f"{where}:1: the first line must be the header {{'format': {FACTS_FORMAT!r}, 'version': 1}}")
    version = header.get("version")
    if not isinstance(version, int) or version > FACTS_VERSION:
        raise TaskError(
            f"{where}: fact-file version {version!r} is newer than this circuitscope reads ({FACTS_VERSION}); "
            "upgrade circuitscope"
        )
    facts = []
    for number, record in body:
        if not isinstance(record, dict) or any(not isinstance(record.get(k), str) for k in _KEYS):
            raise TaskError(f"{where}:{number}: expected an object with string keys {list(_KEYS)}, got {record!r}")
        facts.append(Fact(**{k: record[k] for k in _KEYS}))
    return facts


def load_facts(path: str | os.PathLike[str] | None = None) -> list[Fact]:
    """The shipped fact set (``path=None``), or a fact file of the same format."""
    if path is None:
        data = resources.files("circuitscope.tasks").joinpath("data").joinpath("facts.jsonl")
        text = data.read_text(encoding="utf-8")
        return _parse(text, "circuitscope/tasks/data/facts.jsonl")
    file = Path(path)
    return _parse(read_task_text(file, "fact file"), str(file))
