"""The maze lab's configuration: mazes, network, training method, and the sizes of the measurements."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

from circuitscope.errors import require_at_least
from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.maze.levels import Levels
from circuitscope.toy.maze.policy import MazePolicy
from circuitscope.toy.trainer import TrainConfig

__all__ = ["MazeConfig", "MazeMethod", "MazePreset"]

MazeMethod = Literal["imitation", "ppo"]
MazePreset = Literal["default", "paper"]

_MEASUREMENT_FIELDS = ("n_test_mazes", "n_vector_mazes", "n_probe_mazes", "probe_layers", "max_episode_steps")
"""Fields that change what is measured after training, not the trained policy (left out of the run's identity)."""


@dataclass(frozen=True)
class MazeConfig:
    """The maze lab (Langosco et al. 2022; Turner et al. 2023)."""

    # the mazes
    min_size: int = 5
    """Smallest maze, in squares (odd, at least 3)."""
    max_size: int = 11
    """Largest maze (odd); every observation is padded with walls to this size, the maze centred in it
    (procgen's maze draws smaller mazes the same way)."""
    cheese_region: int = 3
    """During training the cheese is always in the top-right ``cheese_region`` x ``cheese_region`` squares
    of its maze; at test time it is anywhere else."""
    # the network
    channels: tuple[int, ...] = (8, 16, 16)
    """Output channels of each IMPALA block (the paper's network: 16, 32, 32)."""
    residual_units: int = 1
    """Residual units per block (IMPALA: 2)."""
    hidden: int = 128
    """Width of the hidden layer before the action head (IMPALA: 256)."""
    # training
    method: MazeMethod = "imitation"
    """``imitation``: supervised on the shortest-path action (breadth-first search), the fast default;
    ``ppo``: reinforcement learning with the reward 1 at the cheese."""
    n_train_mazes: int = 4000
    """Training levels (imitation: every open square of each is a training state)."""
    steps: int = 3000
    """Optimiser steps (imitation) or PPO iterations (ppo)."""
    batch_size: int = 128
    """States per imitation step."""
    lr: float = 2e-3
    """AdamW learning rate (PPO: Adam's, with these betas), reached after the warm-up and then kept;
    the warm-up rises linearly over ``warmup_steps``."""
    warmup_steps: int = 50
    """Steps of the linear warm-up."""
    checkpoint_every: int = 500
    """Steps (or iterations) between checkpoints, where the training curve is measured and a run resumes."""
    # PPO only
    ppo_envs: int = 32
    """Environments stepped together."""
    ppo_horizon: int = 64
    """Steps each environment takes per iteration; an episode still running at the end is bootstrapped
    by the value head."""
    ppo_epochs: int = 3
    """Passes over each iteration's rollout."""
    ppo_minibatch: int = 512
    """Transitions per update."""
    ppo_clip: float = 0.2
    """The clip range of the probability ratio (Schulman et al.: 0.2), so that one iteration cannot move
    the policy far."""
    gamma: float = 0.97
    """Discount."""
    gae_lambda: float = 0.95
    """The lambda of generalised advantage estimation."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus; the value loss, next, is weighted by ``value_coef``
    (procgen's PPO: 0.01 and 0.5)."""
    value_coef: float = 0.5
    """Weight of the value loss."""
    # the measurements
    max_episode_steps: int = 150
    """An episode (PPO's and the test's) is cut off after this many moves."""
    n_test_mazes: int = 300
    """Test levels for goal misgeneralization, the cheese outside the training region: their episodes
    and their decision squares (for the cheese vector)."""
    n_vector_mazes: int = 100
    """Levels the averaged cheese vector is computed on (separate from the test levels)."""
    n_probe_mazes: int = 1200
    """Levels of the cheese-location probe, the cheese anywhere but the start: three quarters fit it,
    one quarter tests it."""
    probe_layers: tuple[int, ...] | None = None
    """Indices into the policy's hook points (0 = ``hook_in``) to probe; None: every one."""
    seed: int = 0
    """Seeds the levels, the initialisation and the training."""

    def __post_init__(self) -> None:
        self.train_levels()  # validates the sizes and the region
        if self.cheese_region > self.max_size:
            raise LabConfigError(f"cheese_region {self.cheese_region} is larger than the largest maze {self.max_size}")
        if self.method not in get_args(MazeMethod):
            raise LabConfigError(f"method must be one of {get_args(MazeMethod)}, got {self.method!r}")
        if not self.channels or any(c < 1 for c in self.channels) or self.residual_units < 0 or self.hidden < 1:
            raise LabConfigError(
                "channels must be a non-empty list of positive widths, residual_units >= 0 and hidden >= 1; got "
                f"{self.channels}, {self.residual_units}, {self.hidden}"
            )
        positive = ("n_train_mazes", "batch_size", "ppo_envs", "ppo_horizon", "ppo_epochs", "ppo_minibatch")
        positive += ("max_episode_steps", "n_test_mazes", "n_vector_mazes")
        require_at_least(self, positive, LabConfigError)
        if self.n_probe_mazes < 8:
            raise LabConfigError(f"n_probe_mazes must be at least 8 (a quarter is held out), got {self.n_probe_mazes}")
        for name in ("ppo_clip", "gamma", "gae_lambda"):
            if not 0 < getattr(self, name) <= 1:
                raise LabConfigError(f"{name} must lie in (0, 1], got {getattr(self, name)}")
        if self.entropy_coef < 0 or self.value_coef < 0:
            raise LabConfigError("entropy_coef and value_coef must not be negative")
        n_layers = len(self.channels) + 2
        bad = [i for i in self.probe_layers or () if not 0 <= i < n_layers]
        if bad:
            raise LabConfigError(
                f"probe_layers {bad} are out of range: the policy has {n_layers} hook points, 0 (hook_in) to "
                f"{n_layers - 1} (hook_hidden); choose layers in that range"
            )
        TrainConfig.of(self)  # validates the training fields

    @classmethod
    def preset(cls, name: str) -> MazeConfig:
        """``default`` (trains in minutes on 2 cores) or ``paper`` (IMPALA's widths, mazes up to 15 x 15)."""
        presets: dict[str, dict[str, Any]] = {
            "default": {},
            "paper": {
                "min_size": 3, "max_size": 15, "cheese_region": 5, "channels": (16, 32, 32), "residual_units": 2,
                "hidden": 256, "n_train_mazes": 20_000, "steps": 8000, "batch_size": 256, "lr": 1e-3,
                "checkpoint_every": 500, "n_test_mazes": 1000, "n_vector_mazes": 200, "n_probe_mazes": 3000,
            },
        }  # fmt: skip
        if name not in presets:
            raise LabConfigError(f"unknown maze config {name!r}; choose one of {get_args(MazePreset)}")
        return cls(**presets[name])

    def train_levels(self) -> Levels:
        """The training distribution: cheese in the top-right region."""
        return Levels(self.min_size, self.max_size, self.cheese_region)

    def test_levels(self) -> Levels:
        """The test distribution: cheese anywhere."""
        return Levels(self.min_size, self.max_size, None)

    def build_policy(self) -> MazePolicy:
        """A freshly initialised policy, seeded by ``seed``."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return MazePolicy(self.max_size, self.channels, self.residual_units, self.hidden)

    def identity(self) -> dict[str, Any]:
        """What defines the trained policy (for the checkpoint folder): every field but the measurements',
        the PPO fields under imitation, and ``steps`` (a run may be extended)."""
        out = {"lab": "maze", **asdict(self)}
        for name in (*_MEASUREMENT_FIELDS, "steps"):
            del out[name]
        if self.method == "imitation":
            for f in fields(self):
                if f.name.startswith("ppo_") or f.name in ("gamma", "gae_lambda", "entropy_coef", "value_coef"):
                    del out[f.name]
        return out
