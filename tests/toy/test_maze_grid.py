"""Mazes: perfect by construction, seeded, shortest paths against a naive reference, decision squares by hand,
observations, levels and the environment's gymnasium contract (gymnasium's own checker)."""

from __future__ import annotations

import itertools
import random
import warnings

import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.maze.env import MazeEnv
from circuitscope.toy.maze.grid import (
    ACTIONS,
    Maze,
    decision_square,
    distances,
    generate_maze,
    next_action,
    observe,
    shortest_path,
)
from circuitscope.toy.maze.levels import Levels

pytestmark = pytest.mark.usefixtures("one_thread")  # small convolutions: one thread is faster and steadier

# a hand-made 5x5 maze ('#' wall): the start (4, 0) reaches the corner (0, 4) up the left side and along the top
_HAND = ". . . . .|. # # # #|. . . # .|. # # # .|. . . . ."


def _hand_maze(cheese: tuple[int, int] | None) -> Maze:
    walls = tuple(tuple(ch == "#" for ch in row.split()) for row in _HAND.split("|"))
    return Maze(walls, (4, 0), cheese)


def _open_edges(maze: Maze) -> int:
    return sum(
        maze.is_open((r, c)) and maze.is_open((r + dr, c + dc))
        for r, c in maze.open_squares()
        for dr, dc in ((1, 0), (0, 1))
    )


@pytest.mark.parametrize("size", [3, 5, 9, 15])
def test_generated_mazes_are_perfect(size: int) -> None:
    for seed in range(5):
        maze = Maze(generate_maze(size, random.Random(seed)), (size - 1, 0), None)
        cells = ((size + 1) // 2) ** 2
        assert len(maze.open_squares()) == 2 * cells - 1  # every cell and one wall square per tree edge
        assert _open_edges(maze) == len(maze.open_squares()) - 1  # a tree: no loops
        dist = distances(maze, maze.start)
        assert all(dist[r][c] >= 0 for r, c in maze.open_squares())  # connected
        assert all(maze.walls[r][c] for r in range(1, size, 2) for c in range(1, size, 2))


def test_mazes_are_seeded() -> None:
    assert generate_maze(11, random.Random(3)) == generate_maze(11, random.Random(3))
    assert len({generate_maze(11, random.Random(s)) for s in range(10)}) == 10


def _naive_distances(maze: Maze, target: tuple[int, int]) -> list[list[int]]:
    """Bellman-Ford relaxation until nothing changes."""
    n, big = maze.size, 10**9
    dist = [[big] * n for _ in range(n)]
    dist[target[0]][target[1]] = 0
    changed = True
    while changed:
        changed = False
        for r, c in maze.open_squares():
            for dr, dc in ACTIONS:
                if maze.is_open((r + dr, c + dc)) and dist[r + dr][c + dc] + 1 < dist[r][c]:
                    dist[r][c] = dist[r + dr][c + dc] + 1
                    changed = True
    return [[-1 if maze.walls[r][c] else dist[r][c] for c in range(n)] for r in range(n)]


def test_distances_and_paths_match_a_naive_reference() -> None:
    maze = Maze(generate_maze(9, random.Random(1)), (8, 0), None)
    assert distances(maze, maze.corner) == _naive_distances(maze, maze.corner)
    path = shortest_path(maze, maze.start, maze.corner)
    assert len(path) == distances(maze, maze.corner)[8][0] + 1
    assert all(abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1 and maze.is_open(b) for a, b in itertools.pairwise(path))
    with pytest.raises(ValueError, match="no step"):
        next_action(distances(maze, maze.corner), maze.corner)


def test_decision_squares_by_hand() -> None:
    # cheese at (2, 2): both paths go up to (2, 0), then the cheese's turns right, the corner's keeps going up
    decision = decision_square(_hand_maze((2, 2)))
    assert decision is not None
    assert (decision.square, decision.cheese_action, decision.corner_action) == ((2, 0), 3, 0)
    # cheese at (2, 4): reached along the bottom, so the paths part at the start
    decision = decision_square(_hand_maze((2, 4)))
    assert decision is not None and (decision.square, decision.cheese_action, decision.corner_action) == ((4, 0), 3, 0)
    assert decision_square(_hand_maze((0, 4))) is None  # the cheese on the corner: nothing to decide
    assert decision_square(_hand_maze((0, 2))) is None  # on the way to the corner


def test_observation_centres_the_maze_in_walls() -> None:
    maze = _hand_maze((2, 2))
    obs = observe([maze], 9)[0]
    assert obs.shape == (3, 9, 9)
    assert obs[0, :2].eq(1).all() and obs[0, :, 7:].eq(1).all()  # padding is wall
    assert torch.equal(obs[0, 2:7, 2:7], torch.tensor(maze.walls, dtype=torch.float32))
    assert obs[1].sum() == 1 and obs[1, 6, 2] == 1 and obs[2, 4, 4] == 1
    assert observe([maze.with_cheese(None)], 9)[0, 2].sum() == 0
    with pytest.raises(LabConfigError, match="does not centre"):
        observe([maze], 6)


def test_levels_put_the_cheese_in_the_region() -> None:
    levels = Levels(5, 9, 3)
    mazes = levels.draw(0, 50)
    assert {m.size for m in mazes} == {5, 7, 9}
    assert all(m.cheese is not None and m.cheese[0] < 3 and m.cheese[1] >= m.size - 3 for m in mazes)
    anywhere = Levels(5, 9, None).draw(0, 100)
    assert any(m.cheese is not None and m.cheese[0] >= 3 for m in anywhere)
    assert all(m.cheese != m.start for m in anywhere)


@pytest.mark.parametrize(
    ("args", "message"),
    [((1, 5, 3), "at least 3"), ((4, 5, 3), "odd"), ((7, 5, 3), "larger than max_size"), ((3, 5, 0), "cheese_region")],
)
def test_bad_levels_are_refused(args: tuple[int, int, int], message: str) -> None:
    with pytest.raises(LabConfigError, match=message):
        Levels(*args)


def test_env_reset_step_contract() -> None:
    env = MazeEnv(Levels(5, 5, None), max_steps=20)
    maze = _hand_maze((2, 2))
    obs, info = env.reset(seed=0, options={"maze": maze})
    assert torch.equal(torch.from_numpy(obs), observe([maze], 5)[0]) and env.maze is maze
    assert info == {"mouse": maze.start, "cheese": (2, 2)}
    assert env.observation_space.contains(obs) and obs.dtype == np.float32
    obs, reward, terminated, truncated, _ = env.step(3 - 1)  # left into the outer edge: stays put
    assert env.maze is not None and (env.maze.mouse, reward, terminated, truncated) == ((4, 0), 0.0, False, False)
    path = shortest_path(maze, maze.start, (2, 2))
    for a, b in itertools.pairwise(path):
        obs, reward, terminated, truncated, _ = env.step(ACTIONS.index((b[0] - a[0], b[1] - a[1])))
    assert (reward, terminated, truncated) == (1.0, True, False) and obs[1, 2, 2] == 1
    env.reset(seed=0, options={"maze": maze})
    for _ in range(20):
        *_, terminated, truncated, _ = env.step(1)  # down into the wall, 20 times
    assert (terminated, truncated) == (False, True)
    with pytest.raises(LabConfigError, match="0-3"):
        env.step(4)


def test_env_passes_gymnasium_check_env() -> None:
    env = MazeEnv(Levels(5, 7, None), max_steps=30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any complaint of gymnasium's checker fails the test
        check_env(env, skip_render_check=True)
    assert env.action_space == spaces.Discrete(4)
    assert env.observation_space == spaces.Box(0.0, 1.0, (3, 7, 7), np.float32)
    first, _ = env.reset(seed=11)
    assert np.array_equal(first, observe([Levels(5, 7, None).sample(11)], 7)[0].numpy())  # seed = the level
    again, _ = env.reset(seed=11)
    other, _ = env.reset(seed=12)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    env.reset(seed=3)
    drawn = [env.reset()[0] for _ in range(3)]  # no seed: levels from the env's np_random, seeded once
    env.reset(seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(drawn, [env.reset()[0] for _ in range(3)], strict=True))
    assert not np.array_equal(drawn[0], drawn[1])
