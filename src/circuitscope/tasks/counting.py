"""Counting listed objects: ``"I bought a pen, a cup and a hat. In total, I bought"`` -> ``" three"``.

Clean: two, three or four objects listed (``"a pen and a cup"``, ``"a pen, a cup and a hat"``, ...),
then ``"In total, I bought"``; ``correct`` is the count as a word. Corrupted: a list of another
count (seeded), which points to its count, the ``incorrect`` answer. A longer list takes more
tokens, so both prompts end their list with a time phrase (``" today"``, ``" this morning"``, ...,
or none) chosen so that they tokenize to the same length; the phrases name no objects (and hold no "a").
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from circuitscope.tasks.generate import Pair, TaskConfig, build_task, require, single_tokens, task_words
from circuitscope.tasks.task import Task

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["COUNTS", "counting_task"]

COUNTS = {2: "two", 3: "three", 4: "four"}
"""The list lengths, with their words (the answers). The task's ``fillers`` are time phrases that pad the
shorter list to the longer one's token length (a different pair per prompt)."""


def _listed(objects: list[str]) -> str:
    items = [f"a {o}" for o in objects]
    return ", ".join(items[:-1]) + " and " + items[-1]


def counting_task(model: HookedModel, config: TaskConfig | None = None) -> Task:
    """Counting pairs for ``model``: the number of listed objects, the list's length changed."""
    words = task_words("counting")
    objects, fillers = single_tokens(model, words["objects"]), words["fillers"]
    counts = {n: word for n, word in COUNTS.items() if single_tokens(model, [word]) == [word]}
    require("counting", {"objects": (objects, max(COUNTS)), "count words": (list(counts), 2)})

    def prompt(items: list[str], filler: str) -> str:
        return f"I bought {_listed(items)}{filler}. In total, I bought"

    def sample(rng: random.Random) -> Pair | None:
        n, m = rng.sample(sorted(counts), 2)
        drawn = rng.sample(objects, max(n, m))
        clean_len = {f: len(model.tok.encode(prompt(drawn[:n], f))) for f in fillers}
        corrupted_len = {f: len(model.tok.encode(prompt(drawn[:m], f))) for f in fillers}
        fits = [(a, b) for a in fillers for b in fillers if clean_len[a] == corrupted_len[b]]
        if not fits:
            return None
        a, b = rng.choice(fits)
        labels = {"count": str(n), "corrupted_count": str(m)}
        return Pair(prompt(drawn[:n], a), prompt(drawn[:m], b), " " + counts[n], " " + counts[m], labels)

    return build_task(model, config or TaskConfig(), "counting", sample)
