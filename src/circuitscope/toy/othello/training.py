"""Train a GPT-style toy model on Othello move sequences, and measure its legal-move accuracy.

The vocabulary is the board's squares plus a padding token (``S``, after a game's last move); the model
reads moves ``1 .. T - 1`` and predicts, at every position, the next move. With ``target="legal_moves"``
the loss at a position is the cross-entropy against the uniform distribution over the legal next moves
(random play draws the next move from exactly that distribution, so this is the expected next-move loss:
the same minimiser with less noise); with ``"next_move"`` it is the move played, as in Li et al. The
legal-move accuracy is the fraction of positions of held-out games at which the top-1 prediction is a
legal move of the true position.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Bool, Int

from circuitscope.models.toy.modeling import ToyTransformer
from circuitscope.progress import OnProgress
from circuitscope.toy.model import build_toy_of
from circuitscope.toy.othello.config import OthelloConfig
from circuitscope.toy.othello.games import PAD, random_games, replay
from circuitscope.toy.threads import fastest_thread_count, torch_threads
from circuitscope.toy.trainer import Batch, TrainConfig, TrainResult, shuffled_batches, train

__all__ = [
    "OthelloGames",
    "build_othello_model",
    "legal_move_accuracy",
    "model_inputs",
    "next_legal",
    "othello_games",
    "train_othello",
]


@dataclass(frozen=True)
class OthelloGames:
    """The lab's three sets of games (moves ``[G, max_moves]``, -1 after each game's end)."""

    train: Int[torch.Tensor, "G T"]
    """The games the model trains on (seeded by the config's ``seed``; shuffled into batches each epoch)."""
    # the held-out sets, each from its own seed offset
    test: Int[torch.Tensor, "G T"]
    """Held-out games: the legal-move accuracy."""
    probe: Int[torch.Tensor, "G T"]
    """Held-out games whose activations train (the first 80%) and test (the rest) the probes, and whose
    positions are edited."""


TEST_SEED, PROBE_SEED = 1_000_001, 2_000_003
"""Offsets of the held-out and probe games' seeds from the training games' seed."""


def othello_games(config: OthelloConfig) -> OthelloGames:
    """The training, held-out and probe games of ``config``: random legal play from three seeds (on one torch
    thread: the rules are many small element-wise operations, which more threads only slow down)."""
    geometry = config.geometry()

    def games(n: int, seed: int) -> torch.Tensor:
        return random_games(geometry, n, config.seed + seed, config.passes)

    with torch_threads(1):
        return OthelloGames(
            games(config.n_train_games, 0),
            games(config.n_test_games, TEST_SEED),
            games(config.n_probe_games, PROBE_SEED),
        )


def build_othello_model(config: OthelloConfig) -> ToyTransformer:
    """The model of ``config``: vocabulary = squares + padding, context = the moves it reads (max_moves - 1)."""
    geometry = config.geometry()
    return build_toy_of(config, d_vocab=geometry.n_squares + 1, n_ctx=geometry.max_moves - 1)


def model_inputs(moves: Int[torch.Tensor, "G T"], n_squares: int) -> Int[torch.Tensor, "G T1"]:
    """The tokens the model reads: every move but the last slot, padding as token ``n_squares``."""
    read = moves[:, :-1]
    return torch.where(read == PAD, n_squares, read)


def next_legal(config: OthelloConfig, moves: Int[torch.Tensor, "G T"]) -> Bool[torch.Tensor, "G T1 S"]:
    """At each position the model reads, the legal squares of the next move (none after the game's last move)."""
    states = replay(config.geometry(), moves, config.passes)
    legal = states.legal[:, 1:-1]  # after move t (t = 1 .. T - 1)
    return legal & (moves[:, 1:] != PAD)[:, :, None]


def _packed(mask: Bool[torch.Tensor, "... S"]) -> Int[torch.Tensor, "..."]:
    """Each row of squares as the bits of one int64 (square ``s``: bit ``s``; 64 squares fit, sign bit included)."""
    return (mask.long() << torch.arange(mask.shape[-1])).sum(-1)


def _unpacked(bits: Int[torch.Tensor, "..."], n_squares: int) -> Bool[torch.Tensor, "... S"]:
    return ((bits[..., None] >> torch.arange(n_squares)) & 1).bool()


def _loss(config: OthelloConfig):
    n_squares = config.geometry().n_squares

    def loss_fn(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        moves, legal = batch
        logits = model(model_inputs(moves, n_squares)).logits.log_softmax(-1)[..., :n_squares]  # [G, T - 1, S]
        has_next = legal.any(-1)
        if config.target == "legal_moves":
            target = legal.float() / legal.sum(-1, keepdim=True).clamp(min=1)
            losses = -(target * logits).sum(-1)
        else:
            losses = -logits.gather(-1, moves[:, 1:].clamp(min=0)[..., None]).squeeze(-1)
        return (losses * has_next).sum() / has_next.sum().clamp(min=1)

    return loss_fn


@torch.no_grad()
def legal_move_accuracy(
    model: torch.nn.Module, config: OthelloConfig, moves: torch.Tensor, legal: torch.Tensor
) -> float:
    """The fraction of positions with a next move at which the model's top-1 prediction is legal."""
    n_squares = config.geometry().n_squares
    logits = model(model_inputs(moves, n_squares)).logits[..., :n_squares]  # the padding token is never a move
    ok = legal.gather(-1, logits.argmax(-1, keepdim=True)).squeeze(-1)
    has_next = legal.any(-1)
    return float(ok[has_next].float().mean())


def train_othello(
    config: OthelloConfig,
    games: OthelloGames,
    folder: str | Path | None,
    threads: int | None = None,
    on_progress: OnProgress | None = None,
) -> tuple[ToyTransformer, TrainResult]:
    """Train the model of ``config`` on ``games.train`` (resuming from ``folder``), measuring the held-out
    legal-move accuracy at every checkpoint (metric ``legal_move_accuracy``)."""
    model, loss_fn = build_othello_model(config), _loss(config)
    n_squares = config.geometry().n_squares
    with torch_threads(1):  # the legal moves of every position, replayed once, 64 squares to an int64
        legal_bits = torch.cat([_packed(next_legal(config, chunk)) for chunk in games.train.split(4096)])
        test_legal = next_legal(config, games.test)
    shuffled = shuffled_batches(games.train, legal_bits, batch_size=config.batch_size, seed=config.seed)

    def batches(step: int) -> Batch:
        moves, bits = shuffled(step)
        return moves, _unpacked(bits, n_squares)

    metrics = {"legal_move_accuracy": lambda m: legal_move_accuracy(m, config, games.test, test_legal)}
    if threads is None:  # a forward and backward pass of one batch, timed on 1 and 2 threads
        batch = batches(0)

        def forward_backward() -> None:
            loss_fn(model, batch).backward()
            model.zero_grad(set_to_none=True)

        threads = fastest_thread_count(forward_backward)
    run, identity = TrainConfig.of(config, threads=threads), config.data_identity()
    result = train(
        model, loss_fn, batches, run, out=folder, metrics=metrics, identity=identity, on_progress=on_progress
    )
    return model, result
