"""The Othello-GPT lab (``circuitscope lab othello``): a world model inside a sequence model.

- :mod:`~circuitscope.toy.othello.board`: the rules on a batch of boards (8x8, or 6x6 for speed);
- :mod:`~circuitscope.toy.othello.games`: seeded random legal play, replay with every rule checked;
- :mod:`~circuitscope.toy.othello.files`: game files (safetensors of move squares), checked on loading;
- :mod:`~circuitscope.toy.othello.config`, :mod:`~circuitscope.toy.othello.training`: the lab's
  configuration, and the model trained on move sequences (legal-move accuracy);
- :mod:`~circuitscope.toy.othello.probes`, :mod:`~circuitscope.toy.othello.intervene`: board probes by
  layer in both framings, and disc flips along their directions;
- :mod:`~circuitscope.toy.othello.lab`: all of it, one result (:class:`OthelloResult`).
"""

from circuitscope.toy.othello.board import Geometry, apply_moves, legal_mask, square_name, start_boards
from circuitscope.toy.othello.config import OthelloConfig
from circuitscope.toy.othello.files import load_games, save_games
from circuitscope.toy.othello.games import IllegalGameError, random_games, replay
from circuitscope.toy.othello.lab import OthelloResult, run_othello

__all__ = [
    "Geometry",
    "IllegalGameError",
    "OthelloConfig",
    "OthelloResult",
    "apply_moves",
    "legal_mask",
    "load_games",
    "random_games",
    "replay",
    "run_othello",
    "save_games",
    "square_name",
    "start_boards",
]
