"""``circuitscope lab maze``: train the maze policy with the cheese near the top-right corner, then measure it.

1. Training (imitation of shortest paths, or PPO) on levels whose cheese lies in the top-right region.
2. Goal misgeneralization: episodes on test levels with the cheese anywhere outside that region.
3. The cheese vector at every hook point, at decision squares (:mod:`~circuitscope.toy.maze.cheese_vector`).
4. A linear probe for the cheese's square at every (chosen) hook point (:mod:`~circuitscope.toy.maze.probe`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from circuitscope.progress import OnProgress
from circuitscope.toy.maze.cheese_vector import CheeseVectorSweep, cheese_vector_sweep
from circuitscope.toy.maze.config import MazeConfig
from circuitscope.toy.maze.grid import Decision, Maze, decision_square, observe
from circuitscope.toy.maze.imitation import train_imitation
from circuitscope.toy.maze.levels import Levels, level_seed
from circuitscope.toy.maze.policy import MazePolicy
from circuitscope.toy.maze.ppo import train_ppo
from circuitscope.toy.maze.probe import CheeseProbe, cheese_probe
from circuitscope.toy.maze.rollouts import Episode, Misgeneralization, misgeneralization, run_episodes
from circuitscope.toy.threads import fastest_thread_count, torch_threads
from circuitscope.toy.trainer import TrainConfig, TrainResult

__all__ = ["MazeResult", "mazes_outside_region", "run_maze", "train_maze_policy"]

TEST_SEED, VECTOR_SEED, PROBE_SEED = 104_729, 130_363, 155_921
"""Offsets of the seeds of the test, cheese-vector and probe levels from the training levels' seed."""
SHOWN_EPISODES = 3
"""Episodes of each outcome kept for the report's renderings."""


@dataclass(frozen=True)
class MazeResult:
    """Everything the maze lab measured."""

    config: MazeConfig
    method: str
    """What trained the policy (and so produced every figure): ``imitation`` or ``ppo``."""
    train_loss: list[float]
    """Loss of every step (imitation: cross-entropy; PPO: the clipped objective's total loss)."""
    curve_steps: list[int]
    """Steps of ``curve``."""
    curve_name: str
    """``held_out_accuracy`` (imitation: on unseen training-distribution levels) or ``episode_success`` (PPO)."""
    curve: list[float]
    misgeneralization: Misgeneralization
    cheese_vector: CheeseVectorSweep
    probe: CheeseProbe
    episodes: list[Episode]
    """Typical test episodes: up to three that got the cheese, three that went to the corner, three neither."""
    threads: int
    """torch threads the training ran on (given, or measured fastest of 1 and 2)."""
    train_seconds: float
    """Wall-clock seconds of the training this call did (0 when it only resumed a finished run)."""
    seconds: float
    """Wall-clock seconds of the whole call."""

    def to_json(self) -> dict[str, Any]:
        names = ("method", "train_loss", "curve_steps", "curve_name", "curve", "threads", "train_seconds")
        out: dict[str, Any] = {name: getattr(self, name) for name in names}
        out.update(
            config=asdict(self.config),
            misgeneralization=self.misgeneralization.to_json(),
            cheese_vector=self.cheese_vector.to_json(),
            probe=self.probe.to_json(),
            episodes=[e.to_json() for e in self.episodes],
            lab_seconds=self.seconds,
        )
        return out


def _measured_threads(config: MazeConfig, policy: MazePolicy) -> int:
    obs = observe(config.train_levels().draw(config.seed, 32), config.max_size)

    def forward_backward() -> None:
        policy(obs.repeat(4, 1, 1, 1)).sum().backward()
        policy.zero_grad(set_to_none=True)

    return fastest_thread_count(forward_backward)


def train_maze_policy(
    config: MazeConfig, folder: str | Path, threads: int | None = None, on_progress: OnProgress | None = None
) -> tuple[MazePolicy, TrainResult]:
    """The trained policy of ``config`` (training it, or resuming its run, in ``folder``)."""
    policy = config.build_policy()
    if threads is None:
        threads = _measured_threads(config, policy)
    if config.method == "ppo":
        return policy, train_ppo(config, policy, Path(folder), TrainConfig.of(config, threads=threads), on_progress)
    return policy, train_imitation(config, policy, Path(folder), threads=threads, on_progress=on_progress)


def mazes_outside_region(levels: Levels, train: Levels, seed: int, n: int) -> list[Maze]:
    """``n`` levels of ``levels`` whose cheese is outside the training region of ``train``."""
    out: list[Maze] = []
    index = 0
    while len(out) < n:
        maze = levels.sample(level_seed(seed, index))
        index += 1
        if maze.cheese is not None and not train.in_region(maze, maze.cheese):
            out.append(maze)
        if index > 100 * n:
            raise ValueError("the test levels almost never put the cheese outside the training region")
    return out


def _with_decisions(mazes: list[Maze]) -> tuple[list[Maze], list[Decision]]:
    kept, decisions = [], []
    for maze in mazes:
        decision = decision_square(maze)
        if decision is not None:
            kept.append(maze)
            decisions.append(decision)
    return kept, decisions


def _typical(episodes: list[Episode]) -> list[Episode]:
    groups = (
        [e for e in episodes if e.got_cheese and not e.corner_first],
        [e for e in episodes if e.corner_first],
        [e for e in episodes if not e.got_cheese and not e.corner_first],
    )
    return [e for group in groups for e in group[:SHOWN_EPISODES]]


def _measure(
    config: MazeConfig, policy: MazePolicy, on_progress: OnProgress | None
) -> tuple[Misgeneralization, CheeseVectorSweep, CheeseProbe, list[Episode]]:
    policy.eval()
    train, test = config.train_levels(), config.test_levels()
    mazes = mazes_outside_region(test, train, config.seed + TEST_SEED, config.n_test_mazes)
    generator = torch.Generator().manual_seed(config.seed)
    episodes = run_episodes(policy, mazes, config.max_size, config.max_episode_steps, generator)
    corner = [m.with_cheese(m.corner) for m in mazes]
    in_region = run_episodes(policy, corner, config.max_size, config.max_episode_steps, generator)
    vector_mazes = mazes_outside_region(test, train, config.seed + VECTOR_SEED, config.n_vector_mazes)
    sweep = cheese_vector_sweep(policy, _with_decisions(mazes), _with_decisions(vector_mazes), on_progress)
    names = policy.hook_names
    layers = names if config.probe_layers is None else [names[i] for i in config.probe_layers]
    probe_mazes = test.draw(config.seed + PROBE_SEED, config.n_probe_mazes)
    probe = cheese_probe(policy, probe_mazes, layers, on_progress)
    return misgeneralization(episodes, in_region), sweep, probe, _typical(episodes)


def run_maze(
    config: MazeConfig, out: str | Path, threads: int | None = None, on_progress: OnProgress | None = None
) -> MazeResult:
    """Train (resuming from ``out`` if it holds a run of this configuration) and measure, all on the thread
    count of the training (given, or measured fastest for this policy)."""
    start = time.perf_counter()
    policy, run = train_maze_policy(config, out, threads, on_progress)
    train_seconds = time.perf_counter() - start if run.resumed_from != config.steps else 0.0
    chosen = int(run.config.threads or torch.get_num_threads())
    with torch_threads(chosen):  # small convolutions lose on a busy machine's extra threads
        goal, sweep, probe, shown = _measure(config, policy, on_progress)
    curve_name = next(iter(run.metrics))
    return MazeResult(
        config=config,
        method=config.method,
        train_loss=run.loss,
        curve_steps=run.metric_steps,
        curve_name=curve_name,
        curve=run.metrics[curve_name],
        misgeneralization=goal,
        cheese_vector=sweep,
        probe=probe,
        episodes=shown,
        threads=chosen,
        train_seconds=train_seconds,
        seconds=time.perf_counter() - start,
    )
