"""Sentiment continuation: ``"I loved this film. It was really"`` -> ``" good"``; after ``"hated"``, ``" bad"``.

Clean: a template with a verb of liking or disliking (half each, seeded); ``correct`` is ``" good"``
after a liking verb, ``" bad"`` after a disliking one. Corrupted: the verb replaced by one of the
other polarity (equal token length), which points to the other adjective, the ``incorrect`` answer.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from circuitscope.tasks.generate import Pair, TaskConfig, build_task, require, single_tokens
from circuitscope.tasks.task import Task

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["NEGATIVE_VERBS", "POSITIVE_VERBS", "TEMPLATES", "THINGS", "sentiment_task"]

POSITIVE_VERBS = ["loved", "enjoyed", "liked", "adored", "admired", "treasured"]
NEGATIVE_VERBS = ["hated", "disliked", "despised", "loathed", "detested", "resented"]
THINGS = ["movie", "film", "book", "meal", "hotel", "song", "game", "show", "trip", "concert", "album", "play"]
# Templates one per line, a declarative fact each (as in pronouns.py): alike on purpose.
TEMPLATES = [
    "I {verb} this {thing}. It was really",
    "We {verb} the {thing}. Honestly, it was",
    "My friends {verb} that {thing}. They said it was",
    "Everyone {verb} the new {thing}, because it was so",
]
_ADJECTIVE = {"positive": " good", "negative": " bad"}


def sentiment_task(model: HookedModel, config: TaskConfig | None = None) -> Task:
    """Sentiment pairs for ``model``: good/bad after a liking/disliking verb, the verb's polarity flipped."""
    cfg = config or TaskConfig()
    verbs = {"positive": single_tokens(model, POSITIVE_VERBS), "negative": single_tokens(model, NEGATIVE_VERBS)}
    things = single_tokens(model, THINGS)
    require(
        "sentiment",
        {"liking verbs": (verbs["positive"], 1), "disliking verbs": (verbs["negative"], 1), "things": (things, 1)},
    )

    def sample(rng: random.Random) -> Pair | None:
        polarity = rng.choice(("positive", "negative"))
        other = "negative" if polarity == "positive" else "positive"
        verb, swapped = rng.choice(verbs[polarity]), rng.choice(verbs[other])
        template, thing = rng.choice(TEMPLATES), rng.choice(things)
        clean = template.format(verb=verb, thing=thing)
        corrupted = template.format(verb=swapped, thing=thing)
        return Pair(clean, corrupted, _ADJECTIVE[polarity], _ADJECTIVE[other], {"verb": verb, "polarity": polarity})

    return build_task(model, cfg, "sentiment", sample)
