"""Name -> email address: ``"Mary Smith's email address is"`` -> ``" mary"``, the first name in lower case.

Clean: a template naming a person (first and last name); ``correct`` is the first name in lower case,
with which the address starts. Corrupted: the first name replaced by another (equal token length),
which points to that name in lower case, the ``incorrect`` answer. A first name is kept if it and its
lower-case form are single tokens.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from circuitscope.tasks.generate import (
    Pair,
    TaskConfig,
    build_task,
    require,
    single_tokens,
    single_tokens_in_both_cases,
    task_words,
)
from circuitscope.tasks.task import Task

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["email_task"]


def email_task(model: HookedModel, config: TaskConfig | None = None) -> Task:
    """Email pairs for ``model``: the lower-case first name that starts the address, the first name changed."""
    words = task_words("email")
    firsts = single_tokens_in_both_cases(model, words["first_names"])
    lasts = single_tokens(model, words["last_names"])
    require("email", {"first names": (firsts, 2), "last names": (lasts, 1)})

    def sample(rng: random.Random) -> Pair | None:
        first, other = rng.sample(firsts, 2)
        last, template = rng.choice(lasts), rng.choice(words["templates"])
        clean = template.format(first=first, last=last)
        corrupted = template.format(first=other, last=last)
        return Pair(clean, corrupted, " " + first.lower(), " " + other.lower(), {"name": f"{first} {last}"})

    return build_task(model, config or TaskConfig(), "email", sample)
