"""The maze environment: a ``gymnasium.Env`` over seeded :class:`~circuitscope.toy.maze.levels.Levels`.

:class:`MazeEnv` is one episode at a time, with gymnasium's spaces and contract: ``observation_space``
is ``Box(0, 1, (3, max_size, max_size), float32)`` (walls, mouse, cheese), ``action_space`` is
``Discrete(4)`` (up, down, left, right); ``reset(seed=..., options={"maze": maze}) -> (observation,
info)``, ``step(action) -> (observation, reward, terminated, truncated, info)``; reward 1 for reaching
the cheese (the episode then ends), 0 otherwise; truncated after ``max_steps`` moves. ``reset(seed=s)``
plays level ``s`` of the levels; without a seed, a level drawn from the env's ``np_random``. The info is
the mouse's and the cheese's squares (plain tuples, so two runs' infos compare); the maze is ``env.maze``.

This module needs gymnasium (the ``labs`` extra: ``pip install 'circuitscope[labs]'``); nothing else in
:mod:`circuitscope.toy.maze` imports it at import time, so imitation training and the analyses run without it.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.maze.grid import ACTIONS, CHANNELS, Maze, observe
from circuitscope.toy.maze.levels import Levels

__all__ = ["MazeEnv"]


class MazeEnv(gymnasium.Env[np.ndarray, np.int64]):
    """One maze episode at a time; observations are float32 arrays [3, max_size, max_size] in [0, 1]."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012  (gymnasium's class attribute)

    def __init__(self, levels: Levels, max_steps: int) -> None:
        if max_steps < 1:
            raise LabConfigError(f"max_steps must be at least 1, got {max_steps}")
        self.levels = levels
        self.max_steps = max_steps
        self.maze: Maze | None = None
        self.steps = 0
        grid = levels.max_size
        self.observation_space = spaces.Box(0.0, 1.0, (CHANNELS, grid, grid), np.float32)
        self.action_space = spaces.Discrete(len(ACTIONS))

    @property
    def grid(self) -> int:
        return self.levels.max_size

    def _observation(self) -> np.ndarray:
        assert self.maze is not None
        return observe([self.maze], self.grid)[0].numpy()

    def _info(self) -> dict[str, Any]:
        assert self.maze is not None
        return {"mouse": self.maze.mouse, "cheese": self.maze.cheese}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start the episode of level ``seed`` (``options={"maze": maze}``: of that maze as given)."""
        super().reset(seed=seed)
        maze = (options or {}).get("maze")
        if maze is None:
            level = seed if seed is not None else int(self.np_random.integers(2**62))
            maze = self.levels.sample(level)
        self.maze = maze
        self.steps = 0
        return self._observation(), self._info()

    def step(self, action: int | np.int64) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.maze is None:
            raise RuntimeError("call reset() before step()")
        if not 0 <= action < len(ACTIONS):
            raise LabConfigError(f"an action is 0-3 (up, down, left, right), got {action}")
        self.maze = self.maze.with_mouse(self.maze.moved(int(action)))
        self.steps += 1
        terminated = self.maze.mouse == self.maze.cheese
        truncated = not terminated and self.steps >= self.max_steps
        return self._observation(), float(terminated), terminated, truncated, self._info()
