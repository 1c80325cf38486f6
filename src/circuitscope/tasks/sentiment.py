"""Sentiment continuation: ``"I loved this film. It was really"`` -> ``" good"``; after ``"hated"``, ``" bad"``.

Clean: a template with a verb of liking or disliking (half each, seeded); ``correct`` is ``" good"``
after a liking verb, ``" bad"`` after a disliking one. Corrupted: the verb replaced by one of the
other polarity (equal token length), which points to the other adjective, the ``incorrect`` answer.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from circuitscope.tasks.generate import Pair, TaskConfig, build_task, either, require, single_tokens, task_words
from circuitscope.tasks.task import Task

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["sentiment_task"]

_ADJECTIVE = {"positive": " good", "negative": " bad"}


def sentiment_task(model: HookedModel, config: TaskConfig | None = None) -> Task:
    """Sentiment pairs for ``model``: good/bad after a liking/disliking verb, the verb's polarity flipped."""
    words = task_words("sentiment")
    verbs = {side: single_tokens(model, words[f"{side}_verbs"]) for side in _ADJECTIVE}
    things = single_tokens(model, words["things"])
    pools = {"liking verbs": (verbs["positive"], 1), "disliking verbs": (verbs["negative"], 1), "things": (things, 1)}
    require("sentiment", pools)

    def sample(rng: random.Random) -> Pair | None:
        polarity, other = either(rng, ("positive", "negative"))
        verb, swapped = rng.choice(verbs[polarity]), rng.choice(verbs[other])
        template, thing = rng.choice(words["templates"]), rng.choice(things)
        clean = template.format(verb=verb, thing=thing)
        corrupted = template.format(verb=swapped, thing=thing)
        return Pair(clean, corrupted, _ADJECTIVE[polarity], _ADJECTIVE[other], {"verb": verb, "polarity": polarity})

    return build_task(model, config or TaskConfig(), "sentiment", sample)
