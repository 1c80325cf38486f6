"""The maze policy's hook points and cache, episodes of an oracle policy, the cheese vector against a naive
subtraction, the probe on the input (where the cheese is one-hot), and the misgeneralization shares."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from circuitscope.errors import HookNameError
from circuitscope.toy.maze.cheese_vector import cheese_vector_sweep
from circuitscope.toy.maze.config import MazeConfig
from circuitscope.toy.maze.grid import Maze, decision_square, distances, next_action, observe, shortest_path
from circuitscope.toy.maze.levels import Levels
from circuitscope.toy.maze.probe import cheese_probe, fit_softmax_probe
from circuitscope.toy.maze.rollouts import Episode, misgeneralization, run_episodes

pytestmark = pytest.mark.usefixtures("one_thread")  # small convolutions: one thread is faster and steadier

_CONFIG = MazeConfig(min_size=5, max_size=7, cheese_region=3, channels=(4, 8), hidden=16)


def _policy() -> nn.Module:
    return _CONFIG.build_policy().eval()


def test_hook_points_cache_and_hooks() -> None:
    policy = _CONFIG.build_policy().eval()
    assert policy.hook_names == ["hook_in", "blocks.0.hook_out", "blocks.1.hook_out", "hook_hidden"]
    mazes = Levels(5, 7, 3).draw(0, 4)
    obs = observe(mazes, 7)
    logits, cache = policy.run_with_cache(obs)
    assert torch.equal(logits, policy(obs)) and torch.equal(cache["hook_in"], obs)
    assert cache["blocks.0.hook_out"].shape == (4, 4, 4, 4) and cache["blocks.1.hook_out"].shape == (4, 8, 2, 2)
    assert cache["hook_hidden"].shape == (4, 16)
    _, some = policy.run_with_cache(obs, "blocks.*.hook_out")
    assert list(some) == ["blocks.0.hook_out", "blocks.1.hook_out"]

    def zero(x: torch.Tensor, hook: object) -> torch.Tensor:
        return torch.zeros_like(x)

    with policy.hooks([("hook_hidden", zero)]):  # the head sees zeros: its bias alone
        torch.testing.assert_close(policy(obs), policy.policy_head.bias.expand(4, 4), rtol=0, atol=0)
    assert torch.equal(policy(obs), logits)  # removed after the block

    def no_cheese(x: torch.Tensor, hook: object) -> torch.Tensor:
        x = x.clone()
        x[:, 2] = 0
        return x

    with policy.hooks([("hook_in", no_cheese)]):  # an edit of the input is the same as the edited input
        edited = policy(obs)
    assert torch.equal(edited, policy(observe([m.with_cheese(None) for m in mazes], 7)))
    with pytest.raises(HookNameError, match="unknown hook name"):
        policy.run_with_cache(obs, "blocks.0.hook_resid_post")


class _Oracle(nn.Module):
    """Reads the maze off the observation and puts all its probability on the shortest-path move."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out = torch.full((len(obs), 4), -1e4)
        for i, o in enumerate(obs):
            walls = tuple(tuple(bool(v) for v in row) for row in o[0].tolist())
            mouse = tuple(int(v) for v in (o[1] == 1).nonzero()[0])
            cheese = tuple(int(v) for v in (o[2] == 1).nonzero()[0])
            maze = Maze(walls, (mouse[0], mouse[1]), (cheese[0], cheese[1]))
            out[i, next_action(distances(maze, maze.cheese), maze.mouse)] = 0.0  # type: ignore[arg-type]
        return out


def test_an_oracle_walks_the_shortest_paths() -> None:
    mazes = Levels(7, 7, None).draw(1, 12)
    episodes = run_episodes(_Oracle(), mazes, 7, 100, torch.Generator().manual_seed(0))
    for maze, episode in zip(mazes, episodes, strict=True):
        assert maze.cheese is not None
        assert episode.got_cheese and episode.path == shortest_path(maze, maze.start, maze.cheese)
        assert episode.corner_first == (maze.corner in episode.path[:-1])
    short = run_episodes(_Oracle(), mazes, 7, 1, torch.Generator().manual_seed(0))
    assert all(len(e.path) == 2 for e in short)  # one move each: the step limit holds


def test_misgeneralization_shares_by_hand() -> None:
    maze = Levels(5, 5, None).sample(0)

    def episode(cheese: bool, corner: bool) -> Episode:
        return Episode(maze, [maze.start], cheese, corner)

    test = [episode(True, False), episode(True, True), episode(False, True), episode(False, False)]
    shares = misgeneralization(test, [episode(True, False), episode(False, False)])
    assert (shares.got_cheese, shares.corner_first, shares.corner_not_cheese, shares.neither) == (0.5, 0.5, 0.25, 0.25)
    assert shares.train_region_got_cheese == 0.5 and shares.to_json()["n_episodes"] == 4


def _with_decisions(mazes: list[Maze]) -> tuple[list[Maze], list]:
    pairs = [(m, decision_square(m)) for m in mazes]
    kept = [(m, d) for m, d in pairs if d is not None]
    return [m for m, _ in kept], [d for _, d in kept]


def test_cheese_vector_against_a_naive_subtraction() -> None:
    policy = _CONFIG.build_policy().eval()
    test = _with_decisions(Levels(7, 7, None).draw(2, 30))
    vector_set = _with_decisions(Levels(7, 7, None).draw(3, 30))
    sweep = cheese_vector_sweep(policy, test, vector_set)
    assert sweep.layers == policy.hook_names and sweep.n_mazes == len(test[0])
    by = {(e.source, e.layer): e for e in sweep.effects}
    # at the input, the maze's own vector is its cheese channel: subtracting it is removing the cheese
    own = by[("same_maze", "hook_in")]
    assert own.p_subtracted == pytest.approx(own.p_no_cheese, abs=1e-7) and own.removed == pytest.approx(1.0, abs=1e-4)
    # the averaged vector at blocks.0, by hand: mean over the vector mazes of (cheese - no cheese), subtracted
    layer = "blocks.0.hook_out"
    at = [m.with_mouse(d.square) for m, d in zip(*vector_set, strict=True)]
    with_c = policy.run_with_cache(observe(at, 7), layer)[1][layer]
    without = policy.run_with_cache(observe([m.with_cheese(None) for m in at], 7), layer)[1][layer]
    vector = (with_c - without).mean(0)
    obs = observe([m.with_mouse(d.square) for m, d in zip(*test, strict=True)], 7)
    with policy.hooks([(layer, lambda x, hook: x - vector)]), torch.no_grad():
        probs = torch.softmax(policy(obs), -1)
    toward = probs[torch.arange(len(obs)), torch.tensor([d.cheese_action for d in test[1]])]
    assert by[("averaged", layer)].p_subtracted == pytest.approx(float(toward.mean()), abs=1e-6)
    assert set(sweep.stops_working) == {"averaged", "same_maze"}


def test_softmax_probe_separates_separable_classes() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 5, (200,), generator=g)
    x = torch.nn.functional.one_hot(y, 5).float() * 3 + 0.1 * torch.randn(200, 5, generator=g)
    w, b, mean, std = fit_softmax_probe(x, y, 5)
    assert float(((((x - mean) / std) @ w + b).argmax(-1) == y).float().mean()) == 1.0


def test_probe_reads_the_cheese_off_the_input() -> None:
    policy = _CONFIG.build_policy().eval()
    mazes = Levels(5, 5, None).draw(4, 100)  # 8 squares the cheese can take: every one seen in training
    probe = cheese_probe(policy, mazes, ["hook_in", "hook_hidden"])
    assert (probe.n_train, probe.n_test) == (75, 25)
    assert probe.layers == ["hook_in", "hook_hidden"]
    assert probe.test_accuracy[0] == 1.0 and probe.best_layer() == "hook_in"  # the cheese channel is one-hot
    assert 0 < probe.chance < 0.5
