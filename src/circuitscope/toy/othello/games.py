"""Othello games: seeded random legal play, replay with every rule checked, and the board states along a game.

A game is the row of its move squares (``-1`` pads it after the last move); passes are not moves. With
``passes="exclude"`` (the default of the lab) only games in which no player ever passes are kept, so the
players alternate and the player to move is known from the move number; with ``"implicit"`` a player
without a legal move is skipped (as in Li et al.'s synthetic data) and the other one moves again.
:func:`replay` plays a batch of games through the rules and refuses the first illegal move it meets
with :class:`IllegalGameError`, naming the game, the move number and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
from jaxtyping import Bool, Int

from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.othello.board import BLACK, EMPTY, Geometry, apply_moves, legal_mask, square_name, start_boards

__all__ = ["PAD", "GameStates", "IllegalGameError", "Passes", "random_games", "replay"]

Passes = Literal["exclude", "implicit"]
PAD = -1
"""The move value after a game's last move."""
_CHUNK = 2048
"""Games played side by side when generating."""


class IllegalGameError(LabConfigError):
    """A game with a move the rules forbid (an occupied square, a move that flips nothing, a move after the end)."""


@dataclass(frozen=True)
class GameStates:
    """Every position of a batch of games: ``T + 1`` for ``T`` move slots (before each move, then after the last)."""

    boards: Int[torch.Tensor, "G T1 S"]
    """Discs (1 black, -1 white, 0 empty) before move ``t`` (``boards[:, t]``); ``boards[:, T]`` after the
    last slot."""
    player: Int[torch.Tensor, "G T1"]
    """The player to move at each position (1 black, -1 white; 0 once the game is over)."""
    legal: Bool[torch.Tensor, "G T1 S"]
    """The squares where ``player`` may move (none once the game is over)."""
    passes: Int[torch.Tensor, " G"]
    """How many times a player passed in each game."""


def _reason(geometry: Geometry, board: torch.Tensor, player: int, move: int, has_move: bool) -> str:
    name = square_name(move, geometry.size)
    colour = "black" if player == BLACK else "white"
    if not has_move:
        return f"the game is over (neither player has a legal move), yet it has a move {name}"
    if int(board[move]) != EMPTY:
        return f"{name} is already occupied"
    return f"{name} flips no disc of the opponent, so {colour} cannot move there"


def _checked_slots(geometry: Geometry, moves: torch.Tensor, passes: Passes) -> torch.Tensor:
    """``moves`` as int64 once its shape, its values and its padding are checked (not yet the rules)."""
    if passes not in get_args(Passes):
        raise LabConfigError(f"passes must be one of {get_args(Passes)}, got {passes!r}")
    if moves.ndim != 2:
        raise LabConfigError(f"moves must be [games, move slots], got a tensor of shape {tuple(moves.shape)}")
    moves = moves.long()
    outside = (moves < PAD) | (moves >= geometry.n_squares)
    if outside.any():
        g, t = (int(i) for i in outside.nonzero()[0])
        raise IllegalGameError(
            f"game {g}, move {t + 1}: {int(moves[g, t])} is not a square of the {geometry.size}x{geometry.size} board "
            f"(0 to {geometry.n_squares - 1}, or {PAD} after the last move)"
        )
    played = moves != PAD
    gaps = played[:, 1:] & ~played[:, :-1]
    if gaps.any():
        g, t = (int(i) for i in gaps.nonzero()[0])
        raise IllegalGameError(f"game {g}, move {t + 2}: a move after the padding ({PAD}) that ended the game")
    return moves


def replay(geometry: Geometry, moves: Int[torch.Tensor, "G T"], passes: Passes = "implicit") -> GameStates:
    """Play ``moves`` (``-1`` after each game's end) through the rules; raises :class:`IllegalGameError` on the
    first game (lowest index) with an illegal move, or, with ``passes="exclude"``, with a pass."""
    moves = _checked_slots(geometry, moves, passes)
    n_games, slots = moves.shape
    board = start_boards(geometry, n_games)
    player = torch.full((n_games,), BLACK, dtype=torch.long)
    n_passes = torch.zeros(n_games, dtype=torch.long)
    boards, players, legals = [], [], []
    errors: dict[int, str] = {}
    for t in range(slots + 1):
        legal = legal_mask(geometry, board, player)
        stuck = ~legal.any(-1)  # the mover must pass, or the game is over
        other = legal_mask(geometry, board, -player)
        passing = stuck & other.any(-1) & (player != 0)
        player = torch.where(passing, -player, player)
        legal = torch.where(passing[:, None], other, legal)
        n_passes += passing.long()
        over = ~legal.any(-1)
        player = torch.where(over, torch.zeros_like(player), player)
        boards.append(board)
        players.append(player)
        legals.append(legal)
        if t == slots:
            break
        move = moves[:, t]
        active = (move != PAD) & (player != 0)
        ok = legal.gather(1, move.clamp(min=0)[:, None]).squeeze(1)
        bad = (move != PAD) & ~(ok & active)
        if passes == "exclude":
            bad |= passing & (move != PAD)
        for g in bad.nonzero()[:, 0].tolist():
            if g in errors:
                continue
            if passes == "exclude" and bool(passing[g]):
                errors[g] = "a player has no legal move here and passes, but these games have no passes"
            else:
                errors[g] = _reason(geometry, board[g], int(player[g]), int(move[g]), not bool(over[g]))
            errors[g] = f"game {g}, move {t + 1}: {errors[g]}"
        active &= ~bad
        board = apply_moves(geometry, board, player, move.clamp(min=0), active=active)
        player = torch.where(active, -player, player)
    if errors:
        first = min(errors)
        more = f" ({len(errors) - 1} other games are illegal too)" if len(errors) > 1 else ""
        raise IllegalGameError(
            f"{errors[first]}{more}. Fix or drop that game; the rules are in circuitscope.toy.othello"
        )
    return GameStates(torch.stack(boards, 1), torch.stack(players, 1), torch.stack(legals, 1), n_passes)


def _play(geometry: Geometry, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` games of uniformly random legal moves; returns the moves [n, max_moves] and the passes per game."""
    board, player = start_boards(geometry, n), torch.full((n,), BLACK, dtype=torch.long)
    moves = torch.full((n, geometry.max_moves), PAD, dtype=torch.long)
    n_passes = torch.zeros(n, dtype=torch.long)
    for t in range(geometry.max_moves):
        legal = legal_mask(geometry, board, player)
        stuck = ~legal.any(-1)
        other = legal_mask(geometry, board, -player)
        passing = stuck & other.any(-1)
        player = torch.where(passing, -player, player)
        legal = torch.where(passing[:, None], other, legal)
        n_passes += passing.long()
        active = legal.any(-1)
        if not active.any():
            break
        move = (torch.rand(legal.shape, generator=generator) * legal).argmax(-1)  # uniform over the legal squares
        moves[:, t] = torch.where(active, move, PAD)
        board = apply_moves(geometry, board, player, move, active=active)
        player = torch.where(active, -player, player)
    return moves, n_passes


def random_games(geometry: Geometry, n: int, seed: int, passes: Passes = "exclude") -> Int[torch.Tensor, "G T"]:
    """``n`` games of seeded uniformly random legal play, ``[n, max_moves]`` with ``-1`` after each game's end.

    Games are played in chunks of ``min(n, 2048)``, chunk ``k`` from a generator seeded by ``(seed, k)``
    (so the games are a function of ``n`` and ``seed``); with ``passes="exclude"`` games in which a
    player passed are dropped and more chunks are played.
    """
    if passes not in get_args(Passes):
        raise LabConfigError(f"passes must be one of {get_args(Passes)}, got {passes!r}")
    if n < 1:
        raise LabConfigError(f"the number of games must be at least 1, got {n}")
    kept: list[torch.Tensor] = []
    total, chunk = 0, 0
    while total < n:
        moves, n_passes = _play(geometry, min(n, _CHUNK), torch.Generator().manual_seed(seed * 1_000_003 + chunk))
        if passes == "exclude":
            moves = moves[n_passes == 0]
        kept.append(moves)
        total += moves.shape[0]
        chunk += 1
        if chunk > 50 and total < chunk * min(n, _CHUNK) // 100:
            raise LabConfigError(
                f"almost every random {geometry.size}x{geometry.size} game has a pass; use passes='implicit'"
            )
    return torch.cat(kept)[:n]
