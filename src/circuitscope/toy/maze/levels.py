"""Seeded maze levels: which mazes an environment or a data set draws (no gymnasium needed).

:class:`Levels` draws a maze (a size between ``min_size`` and ``max_size``, odd) and puts the cheese
in the top-right ``cheese_region`` x ``cheese_region`` squares of it (the training distribution of
Langosco et al.) or, with ``cheese_region=None``, on any open square but the start (the test).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.maze.grid import MIN_SIZE, Maze, generate_maze

__all__ = ["Levels", "level_seed"]


def level_seed(seed: int, index: int) -> int:
    """The seed of level ``index`` of a set seeded by ``seed`` (distinct sets for distinct seeds)."""
    return (seed * 1_000_003 + index) % (2**63)


@dataclass(frozen=True)
class Levels:
    """Which mazes an environment or data set draws."""

    min_size: int
    """Smallest maze (odd, at least 3)."""
    max_size: int
    """Largest maze (odd); observations are padded to this size."""
    cheese_region: int | None
    """The cheese lies in the top-right ``cheese_region`` x ``cheese_region`` squares; None: anywhere."""

    def __post_init__(self) -> None:
        for name, size in (("min_size", self.min_size), ("max_size", self.max_size)):
            if size < MIN_SIZE or size % 2 == 0:
                raise LabConfigError(
                    f"{name} must be an odd maze size of at least {MIN_SIZE} (a maze smaller than 3x3 has no "
                    f"walls to learn), got {size}"
                )
        if self.min_size > self.max_size:
            raise LabConfigError(f"min_size {self.min_size} is larger than max_size {self.max_size}; swap them")
        if self.cheese_region is not None and self.cheese_region < 1:
            raise LabConfigError(
                f"cheese_region must be at least 1 square (or None: anywhere), got {self.cheese_region}"
            )

    def in_region(self, maze: Maze, square: tuple[int, int]) -> bool:
        """Whether ``square`` lies in the training region of ``maze`` (always, with no region)."""
        if self.cheese_region is None:
            return True
        return square[0] < self.cheese_region and square[1] >= maze.size - self.cheese_region

    def sample(self, seed: int) -> Maze:
        """The level of ``seed``: walls, the mouse at the start, the cheese drawn from the allowed squares."""
        rng = random.Random(seed)
        sizes = list(range(self.min_size, self.max_size + 1, 2))
        size = sizes[rng.randrange(len(sizes))]
        maze = Maze(generate_maze(size, rng), (size - 1, 0), None)
        allowed = [s for s in maze.open_squares() if s != maze.start and self.in_region(maze, s)]
        return maze.with_cheese(allowed[rng.randrange(len(allowed))])  # the corner is always allowed

    def draw(self, seed: int, n: int) -> list[Maze]:
        """``n`` levels of the set seeded by ``seed``."""
        return [self.sample(level_seed(seed, i)) for i in range(n)]
