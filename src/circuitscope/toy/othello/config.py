"""The Othello-GPT lab's configuration: the board, the games, the model, its training, the probes and the edits."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal, get_args

from circuitscope.errors import require_at_least
from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.othello.board import Geometry
from circuitscope.toy.othello.games import Passes
from circuitscope.toy.trainer import TrainConfig

__all__ = ["OthelloConfig", "OthelloPreset", "Target"]

Target = Literal["legal_moves", "next_move"]
OthelloPreset = Literal["default", "paper"]
_DATA_FIELDS = ("size", "passes", "n_train_games", "n_test_games", "target", "batch_size")


# Same shape as src/circuitscope/toy/grokking_lab.py:GrokkingConfig on purpose: a lab's configuration is a frozen
# dataclass with a docstring under each field; the training fields go to TrainConfig.of by name.
@dataclass(frozen=True)
class OthelloConfig:
    """The Othello-GPT experiment (after Li et al. 2023 and Nanda et al. 2023)."""

    size: int = 6
    """Side of the board: 6 (the default, for speed) or 8 (Othello's board); 4 for tests."""
    passes: Passes = "exclude"
    """``exclude``: only games without a pass (the players alternate); ``implicit``: a pass is skipped, as in
    Li et al.'s synthetic games."""
    n_train_games: int = 100_000
    """Games of random legal play to train on (seeded by ``seed``; the default's 3,000 steps of 64 see each about
    twice)."""
    n_test_games: int = 1000
    """Held-out games for the legal-move accuracy (another seed: none of them is a training game but by
    chance)."""
    n_probe_games: int = 1000
    """Held-out games whose activations train (80%) and test (20%) the probes (a third seed)."""
    d_model: int = 96
    """Residual width (with 64 the board was learned too slowly for a 90% linear probe in minutes; see
    docs/othello.md)."""
    n_layers: int = 4
    """Transformer blocks (pre-norm, LayerNorm, learned positions: :func:`circuitscope.toy.build_toy`'s
    defaults)."""
    n_heads: int = 4
    """Attention heads per block."""
    d_mlp: int = 384
    """MLP width (ReLU; the default, 4 x d_model, as in GPT-2 and Li et al.'s model)."""
    # the training fields (TrainConfig's names)
    target: Target = "legal_moves"
    """``legal_moves``: cross-entropy against the uniform distribution over the legal next moves (the expected
    next-move loss under random play: the same minimiser, less noise); ``next_move``: the move played (Li et al.)."""
    steps: int = 3000
    """Training steps."""
    batch_size: int = 64
    """Games per step (each gives up to max_moves - 1 positions to the loss, so 64 games are about 2,000
    predictions on the 6x6 board)."""
    lr: float = 2e-3
    """AdamW peak learning rate (constant after the warm-up)."""
    weight_decay: float = 0.01
    """AdamW weight decay (decoupled; light: the data are fresh games, there is little to forget)."""
    warmup_steps: int = 200
    """Linear warm-up steps (from lr / warmup_steps to lr)."""
    checkpoint_every: int = 250
    """Steps between checkpoints (held-out legal-move accuracy and saved weights)."""
    seed: int = 0
    """Seed of the games (training, held-out and probe games from three offsets of it), the initialisation,
    the batches and the probes."""
    probe_layers: tuple[int, ...] | None = None
    """Residual streams to probe: 0 is the embedding, ``l`` the output of block ``l`` (1 to n_layers); None: all."""
    probe_hidden: int = 128
    """Hidden width of the MLP probes (ReLU)."""
    probe_steps: int = 600
    """Adam steps of each probe (mini-batches of 512 positions)."""
    n_edits: int = 200
    """Board positions edited by the intervention (each flips one disc the probe reads)."""

    def __post_init__(self) -> None:
        geometry = Geometry(self.size)  # validates the size
        if self.passes not in get_args(Passes):
            raise LabConfigError(f"passes must be one of {get_args(Passes)}, got {self.passes!r}")
        if self.target not in get_args(Target):
            raise LabConfigError(f"target must be one of {get_args(Target)}, got {self.target!r}")
        counts = ("n_train_games", "n_test_games", "n_probe_games", "d_model", "n_layers", "n_heads", "d_mlp")
        require_at_least(self, counts, LabConfigError)
        if self.n_probe_games < 5:
            raise LabConfigError(f"n_probe_games must be at least 5 (80% train, 20% test), got {self.n_probe_games}")
        if self.d_model % self.n_heads:
            raise LabConfigError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        if not 1 <= self.batch_size <= self.n_train_games:
            raise LabConfigError(
                f"batch_size must lie in [1, n_train_games={self.n_train_games}], got {self.batch_size}"
            )
        require_at_least(self, ("probe_hidden", "probe_steps", "n_edits"), LabConfigError)
        outside = [layer for layer in self.layers() if not 0 <= layer <= self.n_layers]
        if outside or (self.probe_layers is not None and not self.probe_layers):
            raise LabConfigError(
                f"probe_layers {self.probe_layers} are out of range: the model has residual streams 0 (the "
                f"embedding) to {self.n_layers} (after the last block); give layers in that range, or None for all"
            )
        if geometry.max_moves < 3:
            raise LabConfigError("the board is too small for a game")
        TrainConfig.of(self)  # validates the training fields

    def layers(self) -> tuple[int, ...]:
        """The residual streams probed (0: the embedding, l: after block l)."""
        return tuple(range(self.n_layers + 1)) if self.probe_layers is None else tuple(self.probe_layers)

    def geometry(self) -> Geometry:
        return Geometry(self.size)

    def data_identity(self) -> dict[str, object]:
        """What defines the training data (checked against a checkpoint folder before resuming)."""
        return {
            "lab": "othello",
            "version": 1,
            **{f.name: getattr(self, f.name) for f in fields(self) if f.name in _DATA_FIELDS},
        }

    @classmethod
    def preset(cls, name: OthelloPreset) -> OthelloConfig:
        """``default`` (6x6, 4 layers of width 96: minutes on 2 cores) or ``paper`` (8x8, 8 layers of width 256,
        Li et al.'s board and depth at half their width, next-move loss: hours)."""
        if name == "default":
            return cls()
        if name == "paper":
            return cls(
                size=8,
                passes="implicit",
                n_train_games=200_000,
                d_model=256,
                n_layers=8,
                n_heads=8,
                d_mlp=1024,
                target="next_move",
                steps=40_000,
                batch_size=128,
                lr=5e-4,
                probe_hidden=256,
            )
        raise LabConfigError(f"unknown othello config {name!r}; choose one of {get_args(OthelloPreset)}")
