"""Indirect-object identification prompts (Wang et al. 2022), generated for a model's tokenizer.

A clean prompt names two people, then repeats the subject (S) and asks for the indirect
object (IO): "When Mary and John went to the store, John gave a drink to" -> " Mary".
BABA templates name the subject first, ABBA templates the IO first (15 of each).
Names, places and objects are filtered to those that are one token (with the leading
space) for the model's tokenizer, so clean and corrupted prompts tokenize to equal lengths.

Corruptions:
- ``abc``: all three name occurrences replaced by three other distinct names (no IO cue);
- ``swap``: the repeated subject S2 replaced by the IO name, so the cue points the other way.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from circuitscope.errors import TokenizationError
from circuitscope.tasks.metrics import MetricName
from circuitscope.tasks.task import Task, TaskError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = [
    "ABBA_TEMPLATES",
    "BABA_TEMPLATES",
    "NAMES",
    "OBJECTS",
    "PLACES",
    "Corruption",
    "IOIConfig",
    "ioi_abc_prompts",
    "ioi_task",
]

BABA_TEMPLATES = [
    "Then, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] had a lot of fun at the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] were working at the [PLACE]. [B] decided to give a [OBJECT] to [A]",
    "Then, [B] and [A] were thinking about going to the [PLACE]. [B] wanted to give a [OBJECT] to [A]",
    "Then, [B] and [A] had a long argument, and afterwards [B] said to [A]",
    "After [B] and [A] went to the [PLACE], [B] gave a [OBJECT] to [A]",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give it to [A]",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give the [OBJECT] to [A]",
    "While [B] and [A] were working at the [PLACE], [B] gave a [OBJECT] to [A]",
    "While [B] and [A] were commuting to the [PLACE], [B] gave a [OBJECT] to [A]",
    "After the lunch, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Afterwards, [B] and [A] went to the [PLACE]. Then, [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] had a long argument. Afterwards [B] said to [A]",
    "The [PLACE] [B] and [A] went to had a [OBJECT]. [B] gave it to [A]",
    "Friends [B] and [A] found a [OBJECT] at the [PLACE]. [B] gave it to [A]",
]
ABBA_TEMPLATES = [t.replace("[B] and [A]", "[A] and [B]", 1) for t in BABA_TEMPLATES]

NAMES = [
    "Aaron", "Adam", "Alan", "Alex", "Alice", "Amy", "Anderson", "Andre", "Andrew", "Andy", "Anna", "Anthony",
    "Arthur", "Austin", "Blake", "Brandon", "Brian", "Carter", "Charles", "Charlie", "Christian", "Christopher",
    "Clark", "Cole", "Collins", "Connor", "Crystal", "Daniel", "David", "Dean", "Edward", "Elizabeth", "Emily",
    "Eric", "Eva", "Ford", "Frank", "George", "Georgia", "Graham", "Grant", "Henry", "Ian", "Jack", "Jacob", "Jake",
    "James", "Jamie", "Jane", "Jason", "Jay", "Jennifer", "Jeremy", "Jessica", "John", "Jonathan", "Jordan",
    "Joseph", "Joshua", "Justin", "Kate", "Kelly", "Kevin", "Kyle", "Laura", "Leon", "Lewis", "Lisa", "Louis",
    "Luke", "Madison", "Marco", "Marcus", "Maria", "Mark", "Martin", "Mary", "Matthew", "Max", "Michael",
    "Michelle", "Morgan", "Patrick", "Paul", "Peter", "Prince", "Rachel", "Richard", "River", "Robert", "Roman",
    "Rose", "Ruby", "Russell", "Ryan", "Sarah", "Scott", "Sean", "Simon", "Stephen", "Steven", "Sullivan",
    "Taylor", "Thomas", "Tyler", "Victoria", "Warren", "William",
]  # fmt: skip
PLACES = ["store", "garden", "restaurant", "school", "hospital", "office", "house", "station"]
OBJECTS = ["ring", "kiss", "bone", "basketball", "computer", "necklace", "drink", "snack"]


Corruption = Literal["abc", "swap"]
"""``abc``: three new names; ``swap``: the repeated subject becomes the IO name."""


@dataclass(frozen=True)
class IOIConfig:
    """How to generate an IOI task."""

    n_prompts: int = 64
    """Number of prompt pairs."""
    seed: int = 0
    """Seed for names, places, objects and templates (the same seed gives the same task)."""
    corruption: Corruption = "abc"
    """``abc``: three new names; ``swap``: the repeated subject becomes the IO name."""
    templates: Literal["all", "one"] = "all"
    """``all``: the 30 templates; ``one``: template 0 in both orders (every prompt the same length,
    so positions line up across prompts, as layer x position plots need)."""
    metric: MetricName = "logit_diff"
    """The task's default metric."""

    def __post_init__(self) -> None:
        if self.n_prompts < 1:
            raise ValueError(f"n_prompts must be at least 1, got {self.n_prompts}")
        if self.corruption not in ("abc", "swap"):
            raise ValueError(f"corruption must be 'abc' or 'swap', got {self.corruption!r}")
        if self.templates not in ("all", "one"):
            raise ValueError(f"templates must be 'all' or 'one', got {self.templates!r}")


def _single_tokens(model: HookedModel, words: list[str]) -> list[str]:
    kept = []
    for word in words:
        try:
            model.to_single_token(" " + word)
        except TokenizationError:
            continue
        kept.append(word)
    return kept


def _fill(template: str, io: str, s1: str, s2: str, place: str, obj: str) -> str:
    """The prompt up to the answer: [A] is the IO; the first [B] is S1, the later one S2."""
    text = template.replace("[PLACE]", place).replace("[OBJECT]", obj)
    first = text.index("[B]")
    text = text[:first] + s1 + text[first + 3 :].replace("[B]", s2)
    text = text.replace("[A]", io)
    return text[: text.rindex(" " + io)]


def _words(model: HookedModel, n_names: int, who: str) -> tuple[list[str], list[str], list[str]]:
    """The names, places and objects that are one token for ``model``; at least ``n_names`` names."""
    names = _single_tokens(model, NAMES)
    places = _single_tokens(model, PLACES)
    objects = _single_tokens(model, OBJECTS)
    if len(names) < n_names or not places or not objects:
        raise TaskError(
            f"this tokenizer has too few single-token IOI words ({len(names)} names, {len(places)} places, "
            f"{len(objects)} objects); {who} at least {n_names} names, 1 place and 1 object"
        )
    return names, places, objects


def ioi_task(model: HookedModel, config: IOIConfig | None = None) -> Task:
    """An IOI task for ``model``: clean prompts, their ABC or swapped corruptions, IO vs S answers."""
    cfg = config or IOIConfig()
    names, places, objects = _words(model, 5, "IOI needs")
    if cfg.templates == "one":
        pool = [("BABA", 0, BABA_TEMPLATES[0]), ("ABBA", 0, ABBA_TEMPLATES[0])]
    else:
        pool = [("BABA", i, t) for i, t in enumerate(BABA_TEMPLATES)] + [
            ("ABBA", i, t) for i, t in enumerate(ABBA_TEMPLATES)
        ]
    rng = random.Random(cfg.seed)
    clean, corrupted, correct, incorrect = [], [], [], []
    labels: dict[str, list[str]] = {"template": [], "order": [], "io": [], "s": []}
    for i in range(cfg.n_prompts):
        order, index, template = pool[i % len(pool)] if cfg.templates == "one" else rng.choice(pool)
        io, s, c1, c2, c3 = rng.sample(names, 5)
        place, obj = rng.choice(places), rng.choice(objects)
        prompt = _fill(template, io, s, s, place, obj)
        clean.append(prompt)
        if cfg.corruption == "abc":  # three new names: IO, S1 and S2 all replaced, S1 != S2
            bad = _fill(template, c1, c2, c3, place, obj)
        else:  # S2 becomes the IO's name
            bad = _fill(template, io, s, io, place, obj)
        corrupted.append(bad)
        correct.append(" " + io)
        incorrect.append(" " + s)
        labels["template"].append(f"{order}{index}")
        labels["order"].append(order)
        labels["io"].append(io)
        labels["s"].append(s)
    return Task.from_pairs(model, clean, corrupted, correct, incorrect, name="ioi", metric=cfg.metric, labels=labels)


def ioi_abc_prompts(
    model: HookedModel, templates: Sequence[str], n_per_template: int, seed: int = 0
) -> dict[str, list[str]]:
    """``n_per_template`` ABC fills of each template: three distinct new names, a random place and object.

    ``templates`` are the labels :func:`ioi_task` gives (``task.labels["template"]``, e.g. ``"BABA3"``);
    the answer is ``{label: prompts}``, one entry per distinct label, in the order given. These are the
    reference distribution the IOI circuit's heads are mean-ablated over (Wang et al. 2022): the same
    sentence with no name repeated, so nothing points at an indirect object.
    """
    if n_per_template < 1:
        raise ValueError(f"n_per_template must be at least 1, got {n_per_template}")
    pools = {"BABA": BABA_TEMPLATES, "ABBA": ABBA_TEMPLATES}
    names, places, objects = _words(model, 3, "ABC prompts need")
    rng = random.Random(seed)
    out: dict[str, list[str]] = {}
    for label in dict.fromkeys(templates):
        order, index = label[:4], label[4:]
        if order not in pools or not index.isdigit() or int(index) >= len(pools[order]):
            raise TaskError(
                f"unknown IOI template {label!r}; templates are BABA0..BABA{len(BABA_TEMPLATES) - 1} and "
                f"ABBA0..ABBA{len(ABBA_TEMPLATES) - 1}, as ioi_task labels them"
            )
        template = pools[order][int(index)]
        prompts = []
        for _ in range(n_per_template):
            a, b, c = rng.sample(names, 3)
            prompts.append(_fill(template, a, b, c, rng.choice(places), rng.choice(objects)))
        out[label] = prompts
    return out
