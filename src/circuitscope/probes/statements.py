"""A true/false statement data set generated here: capitals, arithmetic and comparisons.

Everything is produced by the code below from small tables of facts written in this file
(no third-party text). Each true statement has a false twin that differs in one slot (the
capital, the result, the comparison), so a probe cannot tell them apart by topic or length.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

__all__ = ["CAPITALS", "Statement", "Topic", "contrast_pairs", "true_false_statements"]

Topic = Literal["capitals", "arithmetic", "comparison"]
"""What a statement is about: a country's capital, a sum or difference, which of two numbers is larger."""

CAPITALS: list[tuple[str, str]] = [
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"),
    ("China", "Beijing"), ("Russia", "Moscow"), ("Egypt", "Cairo"), ("Greece", "Athens"), ("Norway", "Oslo"),
    ("Sweden", "Stockholm"), ("Finland", "Helsinki"), ("Poland", "Warsaw"), ("Austria", "Vienna"),
    ("Ireland", "Dublin"), ("Portugal", "Lisbon"), ("Canada", "Ottawa"), ("Peru", "Lima"), ("Chile", "Santiago"),
    ("Kenya", "Nairobi"), ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"), ("Iran", "Tehran"), ("Iraq", "Baghdad"),
    ("Turkey", "Ankara"), ("Cuba", "Havana"), ("Hungary", "Budapest"), ("Denmark", "Copenhagen"),
    ("Belgium", "Brussels"), ("Australia", "Canberra"), ("Brazil", "Brasilia"), ("Colombia", "Bogota"),
    ("Indonesia", "Jakarta"), ("Philippines", "Manila"), ("Argentina", "Buenos Aires"), ("India", "New Delhi"),
]  # fmt: skip
"""(country, capital) pairs."""


@dataclass(frozen=True)
class Statement:
    text: str
    label: int
    """1 true, 0 false."""
    topic: Topic
    """``capitals``, ``arithmetic`` or ``comparison``."""
    pair_id: int
    """True and false twins share a pair id."""


def true_false_statements(n_per_topic: int = 60, seed: int = 0) -> list[Statement]:
    """Balanced true/false statements: ``n_per_topic`` per topic (half true), all distinct, in a seeded order.

    Every true statement occurs once, so a held-out split never sees a statement it was trained
    on. The capitals table has :data:`CAPITALS` countries, which bounds ``n_per_topic`` at twice
    its length.
    """
    if n_per_topic < 2 or n_per_topic % 2:
        raise ValueError(f"n_per_topic must be an even number >= 2, got {n_per_topic}")
    half = n_per_topic // 2
    if half > len(CAPITALS):
        raise ValueError(
            f"n_per_topic={n_per_topic} needs {half} distinct capitals but the table has {len(CAPITALS)} "
            f"countries; ask for n_per_topic <= {2 * len(CAPITALS)} (more would repeat statements and let "
            "the held-out split see its training data)"
        )
    rng = random.Random(seed)
    out: list[Statement] = []
    pair = 0

    caps = CAPITALS[:]
    rng.shuffle(caps)
    for country, capital in caps[:half]:
        wrong = rng.choice([c for _, c in CAPITALS if c != capital])
        out.append(Statement(f"The capital of {country} is {capital}.", 1, "capitals", pair))
        out.append(Statement(f"The capital of {country} is {wrong}.", 0, "capitals", pair))
        pair += 1

    seen: set[tuple[int, str, int]] = set()
    while len(seen) < half:
        a, b = rng.randint(2, 49), rng.randint(2, 49)
        op = rng.choice(["+", "-"])
        if (a, op, b) in seen:
            continue
        seen.add((a, op, b))
        result = a + b if op == "+" else a - b
        wrong = result + rng.choice([-10, -2, -1, 1, 2, 10])
        out.append(Statement(f"{a} {op} {b} = {result}.", 1, "arithmetic", pair))
        out.append(Statement(f"{a} {op} {b} = {wrong}.", 0, "arithmetic", pair))
        pair += 1

    compared: set[tuple[int, int, str]] = set()
    while len(compared) < half:
        a, b = rng.sample(range(1, 100), 2)
        big, small = max(a, b), min(a, b)
        word = rng.choice(["larger", "smaller"])
        if (big, small, word) in compared:
            continue
        compared.add((big, small, word))
        true = (big, small) if word == "larger" else (small, big)
        out.append(Statement(f"{true[0]} is {word} than {true[1]}.", 1, "comparison", pair))
        out.append(Statement(f"{true[1]} is {word} than {true[0]}.", 0, "comparison", pair))
        pair += 1
    rng.shuffle(out)
    return out


def contrast_pairs(statements: list[Statement]) -> tuple[list[str], list[str], list[int]]:
    """For CCS: each statement followed by " This is true." and by " This is false.", with its label."""
    pos = [f"{s.text} This is true." for s in statements]
    neg = [f"{s.text} This is false." for s in statements]
    return pos, neg, [s.label for s in statements]
