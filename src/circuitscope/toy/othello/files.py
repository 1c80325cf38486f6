"""Othello game files: the move squares of each game in safetensors, with the board and pass rule in its metadata.

A file holds one tensor ``moves`` (int16 ``[games, max_moves]``, -1 after each game's last move) and the
metadata ``format = circuitscope.othello.games``, ``version``, ``size`` and ``passes``. Loading replays
every game through the rules: a file with an illegal game is refused with the game, the move number and
why (:class:`~circuitscope.toy.othello.games.IllegalGameError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from circuitscope.core.files import atomic_write
from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.othello.board import Geometry
from circuitscope.toy.othello.games import Passes, replay

__all__ = ["GAMES_FORMAT", "GAMES_VERSION", "load_games", "save_games"]

GAMES_FORMAT = "circuitscope.othello.games"
GAMES_VERSION = 1


def save_games(path: str | Path, moves: torch.Tensor, size: int, passes: Passes) -> Path:
    """Write ``moves`` (checked by replaying them first) to ``path``, atomically."""
    replay(Geometry(size), moves, passes)
    meta = {"format": GAMES_FORMAT, "version": str(GAMES_VERSION), "size": str(size), "passes": passes}
    target = Path(path)
    tensors = {"moves": moves.to(torch.int16).contiguous()}
    atomic_write(target, lambda tmp: save_file(tensors, tmp, metadata=meta), shared=False)
    return target


def load_games(path: str | Path) -> tuple[torch.Tensor, Geometry, Passes]:
    """The games of a file written by :func:`save_games`, replayed and checked: (moves, board, pass rule)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            moves = f.get_tensor("moves") if "moves" in f.keys() else None  # noqa: SIM118 (safe_open has no __contains__)
    except (SafetensorError, OSError) as err:
        raise LabConfigError(f"{path} is not a readable game file (safetensors): {err}") from err
    if meta.get("format") != GAMES_FORMAT or moves is None:
        raise LabConfigError(f"{path} is not a circuitscope Othello game file (format {meta.get('format')!r})")
    version = meta.get("version", "")
    if not version.isdigit() or int(version) > GAMES_VERSION:
        raise LabConfigError(f"{path} has game-file version {version!r}; this circuitscope reads up to {GAMES_VERSION}")
    passes = meta.get("passes")
    if passes not in get_args(Passes) or not meta.get("size", "").isdigit():
        raise LabConfigError(f"{path} has no valid 'size' and 'passes' in its metadata: {meta}")
    geometry = Geometry(int(meta["size"]))
    moves = moves.long()
    replay(geometry, moves, passes)  # type: ignore[arg-type]  # checked against Passes above
    return moves, geometry, passes  # type: ignore[return-value]
