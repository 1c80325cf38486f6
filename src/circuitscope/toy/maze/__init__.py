"""The maze lab: goal misgeneralization and the cheese vector in a small convolutional maze policy.

After Langosco et al. 2022 ("Goal Misgeneralization in Deep RL") and Turner et al. 2023
("Understanding and controlling a maze-solving policy network"):

- :mod:`~circuitscope.toy.maze.grid`: perfect mazes (randomized depth-first search), shortest paths,
  decision squares, observations;
- :mod:`~circuitscope.toy.maze.levels`: seeded levels; :mod:`~circuitscope.toy.maze.env`: ``MazeEnv``, a
  ``gymnasium.Env`` over them (needs the ``labs`` extra; imported only by PPO, so not re-exported here);
- :mod:`~circuitscope.toy.maze.policy`: the IMPALA-style policy with circuitscope hook points;
- :mod:`~circuitscope.toy.maze.imitation` and :mod:`~circuitscope.toy.maze.ppo`: the two ways to train it;
- :mod:`~circuitscope.toy.maze.rollouts`, :mod:`~circuitscope.toy.maze.cheese_vector`,
  :mod:`~circuitscope.toy.maze.probe`: the measurements; :mod:`~circuitscope.toy.maze.lab` runs them all.
"""

from circuitscope.toy.maze.cheese_vector import CheeseVectorSweep, cheese_vector_sweep
from circuitscope.toy.maze.config import MazeConfig
from circuitscope.toy.maze.grid import Maze, decision_square, generate_maze, observe, shortest_path
from circuitscope.toy.maze.lab import MazeResult, run_maze, train_maze_policy
from circuitscope.toy.maze.levels import Levels
from circuitscope.toy.maze.policy import MazePolicy
from circuitscope.toy.maze.probe import CheeseProbe, cheese_probe

__all__ = [
    "CheeseProbe",
    "CheeseVectorSweep",
    "Levels",
    "Maze",
    "MazeConfig",
    "MazePolicy",
    "MazeResult",
    "cheese_probe",
    "cheese_vector_sweep",
    "decision_square",
    "generate_maze",
    "observe",
    "run_maze",
    "shortest_path",
    "train_maze_policy",
]
