"""Greater-than (Hanna et al. 2023): after "from the year 1732 to the year 17", a year after 1732.

Clean: ``"The war lasted from the year 1732 to the year 17"``; the model should continue with a
two-digit end year greater than the start year's ``YY`` (32). Corrupted: the start year's last two
digits become ``01`` (``"... from the year 1701 to the year 17"``, Hanna et al.'s corruption), which
removes the constraint: every end year is then later.

The paper's metric is the probability mass on end years ``> YY`` minus that on years ``<= YY``.
This task keeps circuitscope's logit-difference shape instead, with a contrasting single-token
answer: ``correct`` is the first token of the year ten later (``YY + 10``) and ``incorrect`` the
first token of the year ten earlier (``YY - 10``). ``YY`` is drawn from 10..89, so both exist. On a
tokenizer with two-digit tokens (GPT-2) these are ``"42"`` and ``"22"``; on one that splits digits
(Gemma) they are the tens digits ``"4"`` and ``"2"``, and every year starting with the first is
later than ``YY``, every year starting with the second earlier. The ``01`` corruption points to
neither: its logit difference is the model's baseline without the start year's information.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from circuitscope.tasks.generate import (
    Pair,
    TaskConfig,
    build_task,
    continuation,
    require,
    single_tokens,
    task_words,
)
from circuitscope.tasks.task import Task

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["CENTURIES", "greater_than_task"]

CENTURIES = list(range(11, 18))
"""The first two digits of the years (Hanna et al. use the 1100s to the 1700s)."""


def _first_token(model: HookedModel, prompt: str, digits: str) -> str | None:
    added = continuation(model, prompt, digits)
    return None if added is None else str(model.to_string(added[0]))


def greater_than_task(model: HookedModel, config: TaskConfig | None = None) -> Task:
    """Greater-than pairs for ``model``: end year ten later vs ten earlier than the start year; ``01`` corruption."""
    words = task_words("greater-than")
    events = single_tokens(model, words["events"])
    require("greater-than", {"events": (events, 1)})

    def sample(rng: random.Random) -> Pair | None:
        event, template = rng.choice(events), rng.choice(words["templates"])
        century, yy = rng.choice(CENTURIES), rng.randint(10, 89)
        clean = template.format(event=event, start=f"{century}{yy:02d}", century=century)
        corrupted = template.format(event=event, start=f"{century}01", century=century)
        later, earlier = _first_token(model, clean, f"{yy + 10:02d}"), _first_token(model, clean, f"{yy - 10:02d}")
        if later is None or earlier is None:
            return None
        labels = {"event": event, "start": f"{century}{yy:02d}", "yy": f"{yy:02d}"}
        return Pair(clean, corrupted, later, earlier, labels)

    return build_task(model, config or TaskConfig(), "greater-than", sample)
