"""Imitation of shortest paths: the policy learns the breadth-first-search action from every open square.

The data set is every (level, open square) of ``n_train_mazes`` training levels (the cheese in the
top-right region), labelled with the first move of the shortest path from that square to the cheese
(unique: the maze is a tree). A batch of step ``s`` is drawn from a generator seeded by (seed, s),
so :func:`circuitscope.toy.trainer.train` resumes it bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from circuitscope.progress import OnProgress
from circuitscope.toy.maze.config import MazeConfig
from circuitscope.toy.maze.grid import Maze, distances, next_action, observe, offset
from circuitscope.toy.maze.policy import MazePolicy
from circuitscope.toy.trainer import TrainConfig, TrainResult, seeded_batches, train

__all__ = ["StateSet", "state_set", "train_imitation"]

HELD_OUT_SEED = 7_919
"""Offsets the seed of the held-out training-distribution levels from the training levels'."""


@dataclass(frozen=True)
class StateSet:
    """Every non-cheese open square of some levels, with its shortest-path action."""

    base: torch.Tensor
    """Observations of the levels without the mouse [level, 3, grid, grid]."""
    level: torch.Tensor
    """Level of each state [state]."""
    row: torch.Tensor
    """Row of the mouse in the observation (padding included) [state]."""
    col: torch.Tensor
    """Column of the mouse in the observation [state]."""
    action: torch.Tensor
    """The shortest-path action [state]."""

    def __len__(self) -> int:
        return len(self.action)

    def observations(self, idx: torch.Tensor) -> torch.Tensor:
        """Observations of the states ``idx`` [len(idx), 3, grid, grid]."""
        obs = self.base[self.level[idx]].clone()
        obs[torch.arange(len(idx)), 1, self.row[idx], self.col[idx]] = 1.0
        return obs


def state_set(mazes: list[Maze], grid: int) -> StateSet:
    """The states of ``mazes`` (each with its cheese), labelled by breadth-first search."""
    base = observe(mazes, grid)
    base[:, 1] = 0.0
    level, row, col, action = [], [], [], []
    for i, maze in enumerate(mazes):
        assert maze.cheese is not None
        dist, o = distances(maze, maze.cheese), offset(maze.size, grid)
        for square in maze.open_squares():
            if square != maze.cheese:
                level.append(i)
                row.append(square[0] + o)
                col.append(square[1] + o)
                action.append(next_action(dist, square))
    tensors = (torch.tensor(v, dtype=torch.long) for v in (level, row, col, action))
    return StateSet(base, *tensors)


def accuracy(policy: torch.nn.Module, states: StateSet) -> float:
    """Fraction of ``states`` whose most likely action is the shortest-path one."""
    idx = torch.arange(len(states))
    with torch.no_grad():
        return float((policy(states.observations(idx)).argmax(-1) == states.action).float().mean())


def train_imitation(
    config: MazeConfig,
    policy: MazePolicy,
    folder: Path,
    *,
    threads: int | None,
    on_progress: OnProgress | None = None,
) -> TrainResult:
    """Train ``policy`` in place on shortest-path actions (resuming from ``folder``).

    Curves: ``held_out_accuracy`` on 100 unseen levels of the training distribution.
    """
    levels = config.train_levels()
    states = state_set(levels.draw(config.seed, config.n_train_mazes), config.max_size)
    held_out = state_set(levels.draw(config.seed + HELD_OUT_SEED, 100), config.max_size)

    def batch(generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        idx = torch.randint(0, len(states), (config.batch_size,), generator=generator)
        return states.observations(idx), states.action[idx]

    def loss_fn(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(model(batch[0]), batch[1])

    return train(
        policy,
        loss_fn,
        seeded_batches(batch, config.seed),
        TrainConfig.of(config, threads=threads),
        out=folder,
        metrics={"held_out_accuracy": lambda m: accuracy(m, held_out)},
        identity=config.identity(),
        description="maze imitation",
        on_progress=on_progress,
    )
