"""``circuitscope lab othello``: a world model in a sequence model (Li et al. 2023; Nanda et al. 2023).

Generate random legal Othello games, train a GPT-style toy model to predict the next move, and ask
whether it keeps the board: its legal-move top-1 accuracy on held-out games, linear and MLP probes for
each square's state by layer in both framings (black/white and mine/theirs), and an intervention that
flips a disc in the residual stream along the probe directions and checks the predicted legal moves.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from circuitscope.core.hooked_model import HookedModel
from circuitscope.progress import OnProgress
from circuitscope.toy.model import n_params
from circuitscope.toy.othello.config import OthelloConfig
from circuitscope.toy.othello.games import PAD
from circuitscope.toy.othello.intervene import EditResult, choose_edits, edit_board
from circuitscope.toy.othello.probes import Framing, ProbeKind, ProbeScore, fit_all_probes, probe_data
from circuitscope.toy.othello.training import legal_move_accuracy, next_legal, othello_games, train_othello
from circuitscope.toy.threads import torch_threads

__all__ = ["OthelloResult", "run_othello"]


@dataclass(frozen=True)
class OthelloResult:
    """What the lab measured."""

    config: OthelloConfig
    steps: list[int]
    """Checkpoint steps."""
    legal_move_accuracy: list[float]
    """Held-out legal-move top-1 accuracy at each checkpoint step."""
    final_accuracy: float
    """Held-out legal-move top-1 accuracy of the trained model."""
    probes: list[ProbeScore]
    """Every probe: each layer, framing and kind."""
    edits: EditResult
    """The intervention along the linear mine/theirs probe directions."""
    mean_game_length: float
    """Moves per game (training games)."""
    n_params: int
    threads: int | None
    """torch threads the training ran on (given, or measured fastest of 1 and 2)."""
    training_seconds: float
    """Wall-clock seconds of the training call of this run (the thread measurement included)."""
    trained_steps: int
    """Steps this run trained (fewer than ``config.steps`` when it resumed)."""

    def best_probe(self, framing: Framing, kind: ProbeKind) -> ProbeScore:
        """The layer at which this framing and kind of probe reads the board best."""
        return max((p for p in self.probes if p.framing == framing and p.kind == kind), key=lambda p: p.accuracy)

    def to_json(self) -> dict[str, Any]:
        best = {
            f"{kind}_{framing}": self.best_probe(framing, kind).to_json()
            for framing in ("colour", "relative")
            for kind in ("linear", "mlp")
        }
        return {
            "config": asdict(self.config),
            "steps": self.steps,
            "legal_move_accuracy": self.legal_move_accuracy,
            "final_accuracy": self.final_accuracy,
            "best_probes": best,
            "probes": [p.to_json() for p in self.probes],
            "edits": self.edits.to_json(),
            "mean_game_length": self.mean_game_length,
            "n_params": self.n_params,
            "threads": self.threads,
            "training_seconds": self.training_seconds,
            "seconds_per_step": self.training_seconds / self.trained_steps if self.trained_steps else None,
            "trained_steps": self.trained_steps,
        }


def run_othello(
    config: OthelloConfig,
    out: str | Path | None,
    threads: int | None = None,
    strength: float = 1.0,
    on_progress: OnProgress | None = None,
) -> OthelloResult:
    """Train (resuming from ``out``, the checkpoint folder, if it holds a run of this configuration), probe and edit.

    ``on_progress(stage, done, total)`` is told the training steps (``training``) and the probes fitted
    (``board probes``).
    """
    games = othello_games(config)
    steps_done: list[int] = []

    def count(stage: str, done: int, total: int) -> None:
        steps_done.append(done)
        if on_progress is not None:
            on_progress(stage, done, total)

    start = time.perf_counter()
    model, run = train_othello(config, games, out, threads, count)
    seconds = time.perf_counter() - start
    hooked = HookedModel(model)
    # the analysis on the training's thread count too (small products: more threads can be slower)
    with torch_threads(run.config.threads or torch.get_num_threads()):
        data = probe_data(hooked, config, games.probe)
        scores, relative = fit_all_probes(data, config, on_progress)
        cases = choose_edits(config, data, config.n_edits, config.seed)
        edits = edit_board(hooked, config, relative, games.probe, cases, strength)
        final = legal_move_accuracy(model, config, games.test, next_legal(config, games.test))
    return OthelloResult(
        config=config,
        steps=run.metric_steps,
        legal_move_accuracy=run.metrics["legal_move_accuracy"],
        final_accuracy=final,
        probes=scores,
        edits=edits,
        mean_game_length=float((games.train != PAD).sum(1).float().mean()),
        n_params=n_params(model),
        threads=run.config.threads,
        training_seconds=seconds,
        trained_steps=steps_done[-1] - steps_done[0] if steps_done else 0,
    )
