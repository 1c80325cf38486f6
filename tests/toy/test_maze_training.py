"""Training the maze policy: shortest-path labels, imitation and PPO resumed bit for bit, PPO learning a trivial
maze, and a folder of another run refused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from circuitscope.toy.errors import CheckpointError
from circuitscope.toy.maze.config import MazeConfig
from circuitscope.toy.maze.grid import ACTIONS, distances
from circuitscope.toy.maze.imitation import state_set
from circuitscope.toy.maze.lab import train_maze_policy
from circuitscope.toy.maze.levels import Levels
from circuitscope.toy.maze.rollouts import run_episodes

pytestmark = pytest.mark.usefixtures("one_thread")  # small convolutions: one thread is faster and steadier

_IMITATION = MazeConfig(
    min_size=5, max_size=7, channels=(4, 8), hidden=16, n_train_mazes=30, steps=6, batch_size=16, checkpoint_every=3
)
_PPO = MazeConfig(
    min_size=3, max_size=3, cheese_region=1, channels=(4,), residual_units=0, hidden=16, method="ppo",
    steps=4, ppo_envs=4, ppo_horizon=8, ppo_epochs=2, ppo_minibatch=16, lr=3e-3, warmup_steps=0,
    checkpoint_every=2, n_train_mazes=20, max_episode_steps=12,
)  # fmt: skip


def test_labels_step_along_the_shortest_path() -> None:
    mazes = Levels(5, 7, 3).draw(0, 5)
    states = state_set(mazes, 7)
    assert len(states) == sum(len(m.open_squares()) - 1 for m in mazes)
    for i in range(len(states)):
        maze = mazes[int(states.level[i])]
        o = (7 - maze.size) // 2
        square = (int(states.row[i]) - o, int(states.col[i]) - o)
        dr, dc = ACTIONS[int(states.action[i])]
        assert maze.cheese is not None
        dist = distances(maze, maze.cheese)
        assert dist[square[0] + dr][square[1] + dc] == dist[square[0]][square[1]] - 1
    obs = states.observations(torch.tensor([0, 1]))
    assert obs[:, 1].sum() == 2 and torch.equal(obs[:, 0], states.base[states.level[:2], 0])


@pytest.mark.parametrize("config", [_IMITATION, _PPO], ids=["imitation", "ppo"])
def test_interrupted_and_resumed_equals_uninterrupted(config: MazeConfig, tmp_path: Path) -> None:
    uninterrupted, whole_run = train_maze_policy(config, tmp_path / "whole", threads=1)
    whole = uninterrupted.state_dict()
    train_maze_policy(replace(config, steps=config.steps // 2), tmp_path / "resumed", threads=1)  # interrupted
    policy, run = train_maze_policy(config, tmp_path / "resumed", threads=1)
    assert run.resumed_from == config.steps // 2
    assert run.loss == whole_run.loss and run.metrics == whole_run.metrics  # the curves too
    resumed = policy.state_dict()
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)  # bit for bit
    fresh = config.build_policy().state_dict()
    assert any(not torch.equal(whole[k], fresh[k]) for k in whole)  # it did train
    with pytest.raises(CheckpointError, match="another configuration"):
        train_maze_policy(replace(config, hidden=8), tmp_path / "resumed", threads=1)


@pytest.mark.slow  # 40 PPO iterations: what it takes to learn even a 3x3 maze (8 s on a quiet machine)
def test_ppo_learns_a_trivial_maze(tmp_path: Path) -> None:
    config = replace(_PPO, steps=40, ppo_envs=8, ppo_horizon=16, ppo_minibatch=64, checkpoint_every=5)
    mazes = config.train_levels().draw(config.seed, 20)

    def success(policy: torch.nn.Module) -> float:  # within 6 moves; the shortest path takes 4
        episodes = run_episodes(policy.eval(), mazes, 3, 6, torch.Generator().manual_seed(0))
        return sum(e.got_cheese for e in episodes) / len(episodes)

    before = success(config.build_policy())
    policy, run = train_maze_policy(config, tmp_path, threads=1)
    assert success(policy) >= before + 0.3
    assert run.metrics["episode_success"][-1] >= 0.9 > run.metrics["episode_success"][0]
