"""Three-letter acronyms (after García-Carrasco et al. 2024): the third letter of an organisation's acronym.

Clean: ``"The National Science Foundation (NS"`` -> ``"F"``, the first letter of the third word.
Corrupted: the third word replaced by one with another first letter (``"The National Science
Agency (NS"``), which points to ``"A"``, the ``incorrect`` answer. Only word triples whose letters
the tokenizer writes as the prompt's tokens plus one letter token are kept (Gemma's tokenizer
merges many letter pairs, such as ``"CEO"``, into one token).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from circuitscope.tasks.generate import Pair, TaskConfig, build_task, require, single_tokens, task_words
from circuitscope.tasks.task import Task

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["acronyms_task"]


def acronyms_task(model: HookedModel, config: TaskConfig | None = None) -> Task:
    """Acronym pairs for ``model``: the third letter, the third word changed to one with another initial."""
    words = task_words("acronyms")
    first, second, third = (single_tokens(model, words[k]) for k in ("first_words", "second_words", "third_words"))
    initials = sorted({w[0] for w in third})
    require("acronyms", {"first words": (first, 1), "second words": (second, 1), "third-word initials": (initials, 2)})

    def sample(rng: random.Random) -> Pair | None:
        w1, w2, w3 = rng.choice(first), rng.choice(second), rng.choice(third)
        others = [w for w in third if w[0] != w3[0]]
        other = rng.choice(others)
        letters = w1[0] + w2[0]
        clean = f"The {w1} {w2} {w3} ({letters}"
        corrupted = f"The {w1} {w2} {other} ({letters}"
        return Pair(clean, corrupted, w3[0], other[0], {"acronym": letters + w3[0], "corrupted_word": other})

    return build_task(model, config or TaskConfig(), "acronyms", sample)
