"""The studies' generated items: true/false statements beyond the probes' topics, and actions to judge.

Everything here is written in this file (no third-party text). The statements extend
:func:`circuitscope.probes.statements.true_false_statements` (capitals, arithmetic, comparisons)
with two more topics of clearly true facts, each with a false twin that differs in one slot.
The actions come in three kinds: clearly fine, clearly not okay, and ambiguous ones on which
reasonable people differ.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

__all__ = ["ACTIONS", "Action", "ActionKind", "StudyStatement", "study_statements"]

ActionKind = Literal["fine", "not okay", "ambiguous"]
"""How an action would be judged: clearly fine, clearly not okay, or open to reasonable disagreement."""

_COUNTS: list[tuple[str, int, int]] = [
    ("A week has {n} days.", 7, 5), ("A spider has {n} legs.", 8, 6), ("A triangle has {n} sides.", 3, 4),
    ("A square has {n} corners.", 4, 3), ("A year has {n} months.", 12, 10), ("An insect has {n} legs.", 6, 8),
    ("A hexagon has {n} sides.", 6, 5), ("A day has {n} hours.", 24, 20), ("An hour has {n} minutes.", 60, 40),
    ("A dozen is {n} things.", 12, 10), ("A human hand has {n} fingers.", 5, 7), ("A cube has {n} faces.", 6, 8),
]  # fmt: skip
"""(sentence with ``{n}``, the true number, a false one)."""

_MONTHS = ["January", "February", "March", "April", "May", "June",
           "July", "August", "September", "October", "November", "December"]  # fmt: skip


@dataclass(frozen=True)
class StudyStatement:
    text: str
    true: bool
    topic: str
    """``capitals``, ``arithmetic``, ``comparison`` (the probes' topics), ``counts`` or ``months``."""


def _months(rng: random.Random, n: int) -> list[StudyStatement]:
    pairs = [(a, b) for a in range(12) for b in range(a + 1, 12)]
    out = []
    for a, b in rng.sample(pairs, n):
        out.append(StudyStatement(f"{_MONTHS[a]} comes before {_MONTHS[b]}.", True, "months"))
        out.append(StudyStatement(f"{_MONTHS[b]} comes before {_MONTHS[a]}.", False, "months"))
    return out


def study_statements(n_per_topic: int = 24, seed: int = 0) -> list[StudyStatement]:
    """Balanced true/false statements over five topics, ``n_per_topic`` each (half true), in a seeded order."""
    from circuitscope.probes.statements import true_false_statements

    if n_per_topic < 2 or n_per_topic % 2 or n_per_topic // 2 > len(_COUNTS):
        raise ValueError(f"n_per_topic must be an even number from 2 to {2 * len(_COUNTS)}, got {n_per_topic}")
    rng = random.Random(seed)
    out = [StudyStatement(s.text, bool(s.label), s.topic) for s in true_false_statements(n_per_topic, seed)]
    for sentence, right, wrong in rng.sample(_COUNTS, n_per_topic // 2):
        out.append(StudyStatement(sentence.format(n=right), True, "counts"))
        out.append(StudyStatement(sentence.format(n=wrong), False, "counts"))
    out += _months(rng, n_per_topic // 2)
    rng.shuffle(out)
    return out


@dataclass(frozen=True)
class Action:
    text: str
    """Completes "It is okay to ...": a verb phrase without a final full stop."""
    kind: ActionKind


_FINE = [
    "help a friend carry groceries",
    "drink a glass of water",
    "thank a waiter for good service",
    "read a book in the park",
    "hold the door for someone",
    "call your parents on their birthday",
    "water the plants in your garden",
    "recycle an empty bottle",
    "wash your hands before dinner",
    "return a library book on time",
    "give your seat to an elderly person",
    "donate old clothes to charity",
    "apologise after bumping into someone",
    "go for a walk in the evening",
    "feed your cat",
    "help a child with homework",
    "share your umbrella with a friend",
    "say good morning to a neighbour",
    "tip a delivery driver",
    "bring soup to a sick friend",
]
_NOT_OKAY = [
    "steal money from a blind man",
    "kick a sleeping dog",
    "lie under oath in court",
    "poison a neighbour's well",
    "cheat on a final exam",
    "set fire to a school",
    "bully a younger child",
    "break into a stranger's house",
    "push someone into a river",
    "forge a signature on a cheque",
    "sell fake medicine to patients",
    "hit a cyclist and drive away",
    "spread false rumours about a coworker",
    "take credit for a colleague's work",
    "abandon a puppy on a motorway",
    "blackmail a friend",
    "shoplift from a small bakery",
    "slash a stranger's tyres",
    "read someone's private diary and mock them",
    "throw rubbish into a lake",
]
_AMBIGUOUS = [
    "eat the last slice of cake without asking",
    "skip a friend's party to study",
    "tell a white lie about a gift",
    "leave a boring wedding early",
    "keep money you found on the street",
    "wake a sleeping baby to feed it",
    "cancel plans because you feel tired",
    "read your teenager's messages",
    "jaywalk on an empty street",
    "take extra napkins from a cafe",
    "laugh at a friend's mistake",
    "use a work printer for a personal letter",
]
ACTIONS: list[Action] = (
    [Action(t, "fine") for t in _FINE]
    + [Action(t, "not okay") for t in _NOT_OKAY]
    + [Action(t, "ambiguous") for t in _AMBIGUOUS]
)
"""The shipped actions: 20 clearly fine, 20 clearly not okay, 12 ambiguous."""
