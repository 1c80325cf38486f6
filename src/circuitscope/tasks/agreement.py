"""Subject-verb agreement: ``"The key to the cabinet"`` continues with ``" is"``, ``"The keys ..."`` with ``" are"``.

Clean: ``"The {noun} {preposition} the {place}"`` with a singular or plural subject (half each,
seeded); ``correct`` is the verb that agrees with it. The noun of the place is singular, so a plural
subject has an attractor of the other number. Corrupted: the subject in the other number, which
points to the other verb, the ``incorrect`` answer.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from circuitscope.tasks.generate import Pair, TaskConfig, build_task, either, require, single_tokens, task_words
from circuitscope.tasks.task import Task

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["verb_agreement_task"]

_VERB = {"singular": " is", "plural": " are"}


def verb_agreement_task(model: HookedModel, config: TaskConfig | None = None) -> Task:
    """Agreement pairs for ``model``: is/are after a singular/plural subject, the subject's number flipped."""
    words = task_words("verb-agreement")
    nouns = [(s, p) for s, p in words["nouns"] if single_tokens(model, [s, p]) == [s, p]]
    require("verb-agreement", {"noun pairs": (nouns, 1)})

    def sample(rng: random.Random) -> Pair | None:
        (singular, plural), (preposition, place) = rng.choice(nouns), rng.choice(words["places"])
        number, flipped = either(rng, ("singular", "plural"))
        subject, other = (singular, plural) if number == "singular" else (plural, singular)
        clean = f"The {subject} {preposition} the {place}"
        corrupted = f"The {other} {preposition} the {place}"
        return Pair(clean, corrupted, _VERB[number], _VERB[flipped], {"subject": subject, "number": number})

    return build_task(model, config or TaskConfig(), "verb-agreement", sample)
