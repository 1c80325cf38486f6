"""Perfect mazes: generation by randomized depth-first search, shortest paths, decision squares, observations.

A maze of odd size ``n`` is an ``n x n`` grid of squares, each a wall or open, as in procgen's maze:
the open *cells* sit at even (row, column) coordinates and the search carves the wall square between
two neighbouring cells, so every pair of open squares is joined by exactly one path (a tree). Row 0
is the top. The mouse starts in the bottom-left square ``(n - 1, 0)``; the top-right square
``(0, n - 1)`` is *the corner*. An observation pads the maze with walls to a fixed size and centres it:
three channels, walls, mouse and cheese.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, replace

import torch

from circuitscope.toy.errors import LabConfigError

__all__ = [
    "ACTIONS",
    "MIN_SIZE",
    "Maze",
    "Square",
    "decision_square",
    "distances",
    "generate_maze",
    "next_action",
    "observe",
    "shortest_path",
]

Square = tuple[int, int]
"""(row, column), row 0 at the top."""
ACTIONS: tuple[Square, ...] = ((-1, 0), (1, 0), (0, -1), (0, 1))
"""The moves of actions 0-3: up, down, left, right."""
ACTION_NAMES = ("up", "down", "left", "right")
MIN_SIZE = 3
"""The smallest maze: 2 x 2 cells with the walls between them."""
CHANNELS = 3
"""Observation channels: walls, mouse, cheese."""


@dataclass(frozen=True, eq=False)
class Maze:
    """One maze with its mouse and (optionally) its cheese."""

    walls: tuple[tuple[bool, ...], ...]
    """``walls[row][col]``: True for a wall square."""
    mouse: Square
    """The mouse's square."""
    cheese: Square | None
    """The cheese's square (None: a maze without cheese)."""

    @property
    def size(self) -> int:
        return len(self.walls)

    @property
    def start(self) -> Square:
        """Where the mouse starts: the bottom-left square."""
        return (self.size - 1, 0)

    @property
    def corner(self) -> Square:
        """The top-right square (where the training cheese always is, nearby)."""
        return (0, self.size - 1)

    def is_open(self, square: Square) -> bool:
        r, c = square
        return 0 <= r < self.size and 0 <= c < self.size and not self.walls[r][c]

    def open_squares(self) -> list[Square]:
        return [(r, c) for r in range(self.size) for c in range(self.size) if not self.walls[r][c]]

    def moved(self, action: int) -> Square:
        """The mouse's square after ``action`` (a move into a wall or off the grid stays put)."""
        dr, dc = ACTIONS[action]
        target = (self.mouse[0] + dr, self.mouse[1] + dc)
        return target if self.is_open(target) else self.mouse

    def with_mouse(self, square: Square) -> Maze:
        return replace(self, mouse=square)

    def with_cheese(self, square: Square | None) -> Maze:
        return replace(self, cheese=square)


def _check_size(size: int) -> None:
    if size < MIN_SIZE or size % 2 == 0:
        raise LabConfigError(
            f"a maze size must be odd and at least {MIN_SIZE} (open cells at even coordinates, walls between), "
            f"got {size}; use 3, 5, 7, ..."
        )


def generate_maze(size: int, rng: random.Random) -> tuple[tuple[bool, ...], ...]:
    """The walls of a perfect maze of ``size`` x ``size`` squares, carved by randomized depth-first search."""
    _check_size(size)
    cells = (size + 1) // 2
    walls = [[True] * size for _ in range(size)]
    seen = [[False] * cells for _ in range(cells)]
    stack = [(cells - 1, 0)]  # from the mouse's start
    seen[cells - 1][0] = True
    walls[size - 1][0] = False
    while stack:
        r, c = stack[-1]
        options = [
            (r + dr, c + dc)
            for dr, dc in ACTIONS
            if 0 <= r + dr < cells and 0 <= c + dc < cells and not seen[r + dr][c + dc]
        ]
        if not options:
            stack.pop()
            continue
        nr, nc = options[rng.randrange(len(options))]
        seen[nr][nc] = True
        walls[r + nr][c + nc] = False  # the wall square between the two cells (2r + 2nr) / 2
        walls[2 * nr][2 * nc] = False
        stack.append((nr, nc))
    return tuple(tuple(row) for row in walls)


def distances(maze: Maze, target: Square) -> list[list[int]]:
    """Breadth-first distance of every square to ``target`` (-1 for walls)."""
    n = maze.size
    dist = [[-1] * n for _ in range(n)]
    dist[target[0]][target[1]] = 0
    queue = deque([target])
    while queue:
        r, c = queue.popleft()
        for dr, dc in ACTIONS:
            nr, nc = r + dr, c + dc
            if 0 <= nr < n and 0 <= nc < n and not maze.walls[nr][nc] and dist[nr][nc] < 0:
                dist[nr][nc] = dist[r][c] + 1
                queue.append((nr, nc))
    return dist


def next_action(dist: list[list[int]], square: Square) -> int:
    """The action that moves from ``square`` one step closer to the target of ``dist`` (unique in a perfect maze)."""
    r, c = square
    for action, (dr, dc) in enumerate(ACTIONS):
        nr, nc = r + dr, c + dc
        if 0 <= nr < len(dist) and 0 <= nc < len(dist) and dist[nr][nc] == dist[r][c] - 1 >= 0:
            return action
    raise ValueError(f"{square} is the target or a wall; there is no step towards the target from it")


def shortest_path(maze: Maze, source: Square, target: Square) -> list[Square]:
    """The squares from ``source`` to ``target``, both included."""
    dist = distances(maze, target)
    path = [source]
    while path[-1] != target:
        dr, dc = ACTIONS[next_action(dist, path[-1])]
        path.append((path[-1][0] + dr, path[-1][1] + dc))
    return path


@dataclass(frozen=True)
class Decision:
    """Where the path to the cheese and the path to the corner part, and the first step of each."""

    square: Square
    cheese_action: int
    corner_action: int


def decision_square(maze: Maze) -> Decision | None:
    """The last square the paths from the start to the cheese and to the corner share, if they part there
    (None when one path contains the other: then no square decides between them)."""
    if maze.cheese is None:
        raise ValueError("a maze without cheese has no decision square")
    to_cheese = shortest_path(maze, maze.start, maze.cheese)
    to_corner = shortest_path(maze, maze.start, maze.corner)
    shared = 0
    while shared < min(len(to_cheese), len(to_corner)) and to_cheese[shared] == to_corner[shared]:
        shared += 1
    if shared == len(to_cheese) or shared == len(to_corner):
        return None
    square = to_cheese[shared - 1]

    def step(to: Square) -> int:
        return ACTIONS.index((to[0] - square[0], to[1] - square[1]))

    return Decision(square, step(to_cheese[shared]), step(to_corner[shared]))


def offset(size: int, grid: int) -> int:
    """Where a maze of ``size`` starts inside an observation of ``grid`` squares (centred)."""
    return (grid - size) // 2


def observe(mazes: list[Maze], grid: int) -> torch.Tensor:
    """Observations [batch, 3, grid, grid]: walls (the padding is wall), mouse, cheese; each maze centred."""
    out = torch.zeros(len(mazes), CHANNELS, grid, grid)
    out[:, 0] = 1.0
    for i, maze in enumerate(mazes):
        n = maze.size
        if n > grid or (grid - n) % 2:
            raise LabConfigError(f"a maze of size {n} does not centre in an observation of {grid} squares")
        o = offset(n, grid)
        out[i, 0, o : o + n, o : o + n] = torch.tensor(maze.walls, dtype=torch.float32)
        out[i, 1, o + maze.mouse[0], o + maze.mouse[1]] = 1.0
        if maze.cheese is not None:
            out[i, 2, o + maze.cheese[0], o + maze.cheese[1]] = 1.0
    return out
