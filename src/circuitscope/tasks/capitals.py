"""A capital letter after a full stop: ``"... the mat."`` continues with ``" The"``, not ``" the"``.

Clean: two short sentences, the second ending in a full stop (``"We walked to the river. The rain
stopped in the evening."``); ``correct`` is a sentence-opening word capitalised (``" Then"``),
``incorrect`` the same word in lower case (``" then"``). Corrupted: the final full stop becomes a
comma, after which the lower-case word is the one that fits. The word is drawn per pair (the model
is free to pick any next word: the logit difference measures only the choice of case).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from circuitscope.tasks.generate import Pair, TaskConfig, build_task, require, single_tokens_in_both_cases, task_words
from circuitscope.tasks.task import Task

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["capital_after_period_task"]


def capital_after_period_task(model: HookedModel, config: TaskConfig | None = None) -> Task:
    """Capitalisation pairs for ``model``: a capitalised opener after ``"."``, lower case after ``","``.

    The openers are words that open a sentence, each kept if it is one token capitalised and in lower case.
    """
    words = task_words("capital-after-period")
    openers = single_tokens_in_both_cases(model, words["openers"])
    require("capital-after-period", {"sentence openers": (openers, 1)})

    def sample(rng: random.Random) -> Pair | None:
        first, second = rng.sample(words["sentences"], 2)
        word = rng.choice(openers)
        clean = f"{first}. {second}."
        return Pair(clean, clean[:-1] + ",", " " + word, " " + word.lower(), {"opener": word})

    return build_task(model, config or TaskConfig(), "capital-after-period", sample)
