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

from circuitscope.tasks.generate import Pair, TaskConfig, build_task, require, single_tokens
from circuitscope.tasks.task import Task

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["OPENERS", "SENTENCES", "capital_after_period_task"]

SENTENCES = [
    "We walked to the river", "The rain stopped in the evening", "My sister baked a cake",
    "The train was late again", "Our neighbours painted their fence", "The children played in the park",
    "I finished the report on time", "The shop closed early", "He fixed the old bicycle",
    "The wind blew all night", "She planted tomatoes in the garden", "The meeting ran long",
    "They moved to a new town", "The kettle began to whistle", "We watched the boats in the harbour",
    "The dog slept by the fire", "The students read in silence", "Snow covered the hills",
]  # fmt: skip
OPENERS = ["The", "It", "We", "They", "She", "He", "Then", "But", "After", "This", "There", "Later", "Our", "When"]
"""Words that open a sentence; each is kept if it is one token both capitalised and in lower case."""


def capital_after_period_task(model: HookedModel, config: TaskConfig | None = None) -> Task:
    """Capitalisation pairs for ``model``: a capitalised opener after ``"."``, lower case after ``","``."""
    cfg = config or TaskConfig()
    lower = set(single_tokens(model, [w.lower() for w in OPENERS]))
    openers = [w for w in single_tokens(model, OPENERS) if w.lower() in lower]
    require("capital-after-period", {"sentence openers": (openers, 1)})

    def sample(rng: random.Random) -> Pair | None:
        first, second = rng.sample(SENTENCES, 2)
        word = rng.choice(openers)
        clean = f"{first}. {second}."
        return Pair(clean, clean[:-1] + ",", " " + word, " " + word.lower(), {"opener": word})

    return build_task(model, cfg, "capital-after-period", sample)
