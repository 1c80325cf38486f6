"""The rules of Othello on an n x n board (n even, 4 to 8), played on many boards at once.

A board is a row of ``n * n`` cells in reading order (square ``row * n + col``; named ``a1`` for the
top-left corner, the letter the column and the number the row, as in Othello notation) holding
``1`` (black), ``-1`` (white) or ``0`` (empty); black moves first. A move on an empty square is legal
when, in at least one of the 8 directions, it is followed by one or more of the opponent's discs and
then one of the mover's: all those opponent discs flip. A player without a legal move passes; the
game ends when neither player has one.

Every function takes a batch: boards ``[G, S]`` and the player to move ``[G]`` (``1`` or ``-1``), so
thousands of games advance together. The legal squares come from whole-board shifts (runs of the
opponent's discs grown from the mover's, one step per shift, in each direction); the flips of one move
from its square's 8 rays (:class:`Geometry`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from jaxtyping import Bool, Int

from circuitscope.toy.errors import LabConfigError

__all__ = [
    "BLACK",
    "DIRECTIONS",
    "EMPTY",
    "WHITE",
    "Geometry",
    "apply_moves",
    "flip_counts",
    "legal_mask",
    "square_name",
    "start_boards",
]

BLACK, WHITE, EMPTY = 1, -1, 0
DIRECTIONS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
"""The 8 (row step, column step) directions a move can flip along."""


@dataclass(frozen=True)
class Geometry:
    """The squares of an n x n board and, for every square, its 8 rays of neighbours."""

    size: int
    """Side of the board: an even number from 4 to 8 (Othello's 8, or 6 for speed)."""
    rays: torch.Tensor = field(init=False, repr=False, compare=False)
    """``[S, 8, size - 1]``: the squares along each direction from each square, nearest first; ``S`` (a cell
    that is always empty) past the edge."""

    def __post_init__(self) -> None:
        if self.size not in (4, 6, 8):
            raise LabConfigError(
                f"the board size must be 4, 6 or 8 (even, with a centre of 4 squares), got {self.size}"
            )
        n = self.size
        rays = torch.full((n * n, len(DIRECTIONS), n - 1), n * n, dtype=torch.long)
        for square in range(n * n):
            row, col = divmod(square, n)
            for d, (dr, dc) in enumerate(DIRECTIONS):
                for k in range(n - 1):
                    r, c = row + dr * (k + 1), col + dc * (k + 1)
                    if not (0 <= r < n and 0 <= c < n):
                        break
                    rays[square, d, k] = r * n + c
        object.__setattr__(self, "rays", rays)

    @property
    def n_squares(self) -> int:
        return self.size * self.size

    @property
    def max_moves(self) -> int:
        """The most moves a game can have: every square but the 4 of the centre."""
        return self.n_squares - 4

    def square(self, name: str) -> int:
        """The index of a square named like ``c4`` (column letter, row number from 1)."""
        text = name.strip().lower()
        col, row = (ord(text[0]) - ord("a"), int(text[1:])) if len(text) >= 2 and text[1:].isdigit() else (-1, -1)
        if not (0 <= col < self.size and 1 <= row <= self.size):
            last = chr(ord("a") + self.size - 1)
            raise LabConfigError(
                f"{name!r} is not a square of the {self.size}x{self.size} board (a1 to {last}{self.size})"
            )
        return (row - 1) * self.size + col


def square_name(square: int, size: int) -> str:
    """``c4`` for the square in column c (the third), row 4."""
    row, col = divmod(square, size)
    return f"{chr(ord('a') + col)}{row + 1}"


def start_boards(geometry: Geometry, n: int) -> Int[torch.Tensor, "G S"]:
    """``n`` opening positions: white on the centre's top-left and bottom-right squares, black on the others."""
    size, board = geometry.size, torch.zeros(n, geometry.n_squares, dtype=torch.long)
    top, left = size // 2 - 1, size // 2 - 1
    for dr, dc, colour in ((0, 0, WHITE), (0, 1, BLACK), (1, 0, BLACK), (1, 1, WHITE)):
        board[:, (top + dr) * size + left + dc] = colour
    return board


Boards = Int[torch.Tensor, "G S"]
"""A batch of boards (1 black, -1 white, 0 empty)."""
PerGame = Int[torch.Tensor, " G"]
"""One number per game (a player, or a square)."""
Mask = Bool[torch.Tensor, " G"] | None
"""Games to act on (None: all)."""


def _bits(cells: torch.Tensor) -> np.ndarray:
    """A boolean ``[G, S]`` board as one 64-bit integer per game (square ``s`` is bit ``s``)."""
    weights = np.left_shift(np.uint64(1), np.arange(cells.shape[1], dtype=np.uint64))
    return np.bitwise_or.reduce(cells.numpy().astype(np.uint64) * weights, axis=1)


def _neighbour(x: np.ndarray, dr: int, dc: int, geometry: Geometry) -> np.ndarray:
    """Bit ``s`` of the result is bit ``s + dr * n + dc`` of ``x`` (0 past the board's edge)."""
    n, k = geometry.size, dr * geometry.size + dc
    y = np.right_shift(x, np.uint64(k)) if k > 0 else np.left_shift(x, np.uint64(-k))
    edge = 0 if dc == 0 else sum(1 << (r * n + (n - 1 if dc == 1 else 0)) for r in range(n))
    full = (1 << geometry.n_squares) - 1
    return y & np.uint64(full & ~edge)


def legal_mask(
    geometry: Geometry, boards: Int[torch.Tensor, "G S"], player: Int[torch.Tensor, " G"]
) -> Bool[torch.Tensor, "G S"]:
    """The squares where ``player`` may move: in some direction from the empty square, a run of the
    opponent's discs closed by one of the mover's (grown one square at a time from the mover's discs,
    on 64-bit boards)."""
    relative = boards * player[:, None]
    mine, theirs, empty = _bits(relative == 1), _bits(relative == -1), _bits(relative == EMPTY)
    legal = np.zeros_like(mine)
    for dr, dc in DIRECTIONS:  # (dr, dc): from the move's square towards the mover's closing disc
        run = _neighbour(mine, dr, dc, geometry) & theirs  # opponent discs with a mover's disc just beyond
        for _ in range(geometry.size - 3):
            run |= _neighbour(run, dr, dc, geometry) & theirs
        legal |= _neighbour(run, dr, dc, geometry) & empty
    squares = np.arange(geometry.n_squares, dtype=np.uint64)
    return torch.from_numpy((np.right_shift(legal[:, None], squares) & np.uint64(1)).astype(bool))


def flip_counts(
    geometry: Geometry,
    boards: Int[torch.Tensor, "G S"],
    player: Int[torch.Tensor, " G"],
    moves: Int[torch.Tensor, " G"],
) -> Int[torch.Tensor, "G 8"]:
    """How many discs a move by ``player`` on ``moves`` flips along each direction (all 0 if it is illegal)."""
    relative = boards * player[:, None]  # 1: the mover's, -1: the opponent's
    padded = torch.cat([relative, torch.zeros_like(relative[:, :1])], dim=1)  # [G, S + 1]: the off-board cell
    cells = padded.gather(1, geometry.rays[moves].flatten(1)).view(-1, len(DIRECTIONS), geometry.size - 1)
    run = (cells == -1).long().cumprod(-1).sum(-1)  # opponent discs in a row from the square
    end = cells.gather(-1, run.clamp(max=cells.shape[-1] - 1).unsqueeze(-1)).squeeze(-1)
    closed = (run >= 1) & (run < cells.shape[-1]) & (end == 1)  # ... then one of the mover's
    empty = relative.gather(1, moves[:, None]) == EMPTY
    return run * (closed & empty)


def apply_moves(geometry: Geometry, boards: Boards, player: PerGame, moves: PerGame, *, active: Mask = None) -> Boards:
    """The boards after ``player`` moves on ``moves`` (which must be legal), flips included; rows not
    ``active`` are returned unchanged."""
    g = torch.arange(boards.shape[0])
    active = torch.ones_like(moves, dtype=torch.bool) if active is None else active
    safe = torch.where(active, moves, 0)
    runs = flip_counts(geometry, boards, player, safe) * active[:, None]  # [G, 8]
    rays = geometry.rays[safe]  # [G, 8, n - 1]
    flipped = torch.arange(rays.shape[-1]) < runs[:, :, None]  # [G, 8, n - 1]
    out = torch.cat([boards, torch.zeros_like(boards[:, :1])], dim=1)
    rows = g[:, None, None].expand_as(rays)
    out[rows[flipped], rays[flipped]] = player[:, None, None].expand_as(rays)[flipped]
    out[g[active], safe[active]] = player[active]
    return out[:, :-1]
