"""Pronoun choice: ``"Mary went to the doctor because"`` continues with ``" she"``, ``"John ..."`` with ``" he"``.

Clean: a template with one person's name; ``correct`` is the pronoun of the name's usual gender.
Corrupted: the name replaced by a name of the other gender (equal token length), which points to
the other pronoun, the ``incorrect`` answer. Half the clean names are women's, half men's (seeded).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from circuitscope.tasks.generate import Pair, TaskConfig, build_task, require, single_tokens
from circuitscope.tasks.task import Task

# Imports, then word lists one declarative fact per line: every task generator is laid out alike on purpose.
if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["FEMALE_NAMES", "MALE_NAMES", "TEMPLATES", "pronoun_task"]

FEMALE_NAMES = [
    "Mary", "Anna", "Sarah", "Emily", "Laura", "Lisa", "Rachel", "Kate", "Jane", "Alice",
    "Emma", "Julia", "Linda", "Susan", "Helen", "Grace", "Lucy", "Karen", "Amy", "Sophie",
]  # fmt: skip
MALE_NAMES = [
    "John", "David", "Michael", "James", "Robert", "Peter", "Thomas", "Daniel", "Paul", "Mark",
    "George", "Henry", "Frank", "Steven", "Kevin", "Brian", "Simon", "Eric", "Adam", "Jack",
]  # fmt: skip
# Templates one per line, a declarative fact each (as in sentiment.py): alike on purpose.
TEMPLATES = [
    "{name} went to the doctor because",
    "{name} was very tired, so",
    "When {name} got home in the evening,",
    "{name} called the office because",
    "After the long meeting, {name} said that",
    "{name} missed the bus, and then",
    "{name} opened the letter and",
    "Yesterday {name} told me that",
]
_PRONOUN = {"female": " she", "male": " he"}


def pronoun_task(model: HookedModel, config: TaskConfig | None = None) -> Task:
    """Pronoun pairs for ``model``: she/he after a woman's/man's name, the name swapped to the other gender."""
    cfg = config or TaskConfig()
    names = {"female": single_tokens(model, FEMALE_NAMES), "male": single_tokens(model, MALE_NAMES)}
    require("pronoun", {"women's names": (names["female"], 1), "men's names": (names["male"], 1)})

    def sample(rng: random.Random) -> Pair | None:
        gender = rng.choice(("female", "male"))
        other = "male" if gender == "female" else "female"
        name, swapped, template = rng.choice(names[gender]), rng.choice(names[other]), rng.choice(TEMPLATES)
        clean, corrupted = template.format(name=name), template.format(name=swapped)
        return Pair(clean, corrupted, _PRONOUN[gender], _PRONOUN[other], {"name": name, "gender": gender})

    return build_task(model, cfg, "pronoun", sample)
