"""Pronoun choice: ``"Mary went to the doctor because"`` continues with ``" she"``, ``"John ..."`` with ``" he"``.

Clean: a template with one person's name; ``correct`` is the pronoun of the name's usual gender.
Corrupted: the name replaced by a name of the other gender (equal token length), which points to
the other pronoun, the ``incorrect`` answer. Half the clean names are women's, half men's (seeded).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from circuitscope.tasks.generate import Pair, TaskConfig, build_task, either, require, single_tokens, task_words
from circuitscope.tasks.task import Task

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["pronoun_task"]

_PRONOUN = {"female": " she", "male": " he"}


def pronoun_task(model: HookedModel, config: TaskConfig | None = None) -> Task:
    """Pronoun pairs for ``model``: she/he after a woman's/man's name, the name swapped to the other gender."""
    words = task_words("pronoun")
    names = {"female": single_tokens(model, words["female_names"]), "male": single_tokens(model, words["male_names"])}
    require("pronoun", {"women's names": (names["female"], 1), "men's names": (names["male"], 1)})

    def sample(rng: random.Random) -> Pair | None:
        gender, other = either(rng, ("female", "male"))
        name, swapped, template = rng.choice(names[gender]), rng.choice(names[other]), rng.choice(words["templates"])
        clean, corrupted = template.format(name=name), template.format(name=swapped)
        return Pair(clean, corrupted, _PRONOUN[gender], _PRONOUN[other], {"name": name, "gender": gender})

    return build_task(model, config or TaskConfig(), "pronoun", sample)
