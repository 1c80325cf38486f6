"""Name -> email address: ``"Mary Smith's email address is"`` -> ``" mary"``, the first name in lower case.

Clean: a template naming a person (first and last name); ``correct`` is the first name in lower case,
with which the address starts. Corrupted: the first name replaced by another (equal token length),
which points to that name in lower case, the ``incorrect`` answer. A first name is kept if it and its
lower-case form are single tokens.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from circuitscope.tasks.generate import Pair, TaskConfig, build_task, require, single_tokens
from circuitscope.tasks.task import Task

# Imports, then word lists one declarative fact per line: every task generator is laid out alike on purpose.
if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["FIRST_NAMES", "LAST_NAMES", "TEMPLATES", "email_task"]

FIRST_NAMES = [
    "Mary", "John", "Anna", "David", "Sarah", "Michael", "Laura", "James", "Emily", "Robert",
    "Lisa", "Peter", "Kate", "Thomas", "Jane", "Daniel", "Alice", "Paul", "Helen", "Mark",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Brown", "Miller", "Wilson", "Moore", "Taylor", "Clark", "Hall", "Young", "King",
    "Wright", "Green", "Baker", "Adams", "Nelson", "Hill", "Scott", "Carter", "Turner", "Parker",
]  # fmt: skip
TEMPLATES = [
    "{first} {last}'s email address is",
    "To write to {first} {last}, send an email to",
    "The email address of {first} {last} is",
    "Contact: {first} {last}, email:",
]


def email_task(model: HookedModel, config: TaskConfig | None = None) -> Task:
    """Email pairs for ``model``: the lower-case first name that starts the address, the first name changed."""
    cfg = config or TaskConfig()
    lower = set(single_tokens(model, [n.lower() for n in FIRST_NAMES]))
    firsts = [n for n in single_tokens(model, FIRST_NAMES) if n.lower() in lower]
    lasts = single_tokens(model, LAST_NAMES)
    require("email", {"first names": (firsts, 2), "last names": (lasts, 1)})

    def sample(rng: random.Random) -> Pair | None:
        first, other = rng.sample(firsts, 2)
        last, template = rng.choice(lasts), rng.choice(TEMPLATES)
        clean = template.format(first=first, last=last)
        corrupted = template.format(first=other, last=last)
        return Pair(clean, corrupted, " " + first.lower(), " " + other.lower(), {"name": f"{first} {last}"})

    return build_task(model, cfg, "email", sample)
