"""The cheese vector (Turner et al. 2023): subtract "cheese minus no cheese" at a layer and see the cheese vanish.

At a hook point, the vector is the activation of a maze with its cheese minus the activation of the
same maze without it. Two versions, each subtracted (coefficient 1) during the forward pass:

- ``averaged``: the difference averaged over separate mazes (each with the mouse on its decision
  square), one vector for every test maze;
- ``same_maze``: the test maze's own difference with the mouse on its start square, applied with the
  mouse on the decision square (Turner et al.'s setting). At ``hook_in`` it removes the cheese
  channel exactly: the baseline where subtracting trivially works.

Measured at *decision squares* (where the paths to the cheese and to the corner part): the policy's
probability of the move toward the cheese with the cheese, without it, and with the vector
subtracted. ``removed`` = (p_cheese - p_subtracted) / (p_cheese - p_no_cheese), averaged over mazes
as a ratio of means: 1 when subtracting does all that taking the cheese away does, 0 when it does
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import torch

from circuitscope.core.hook_points import HookPoint
from circuitscope.progress import OnProgress, track
from circuitscope.toy.maze.grid import Decision, Maze, observe
from circuitscope.toy.maze.policy import MazePolicy

__all__ = ["STOPS_WORKING", "CheeseVectorLayer", "CheeseVectorSweep", "VectorSource", "cheese_vector_sweep"]

VectorSource = Literal["averaged", "same_maze"]
STOPS_WORKING = 0.5
"""A layer where the vector removes less than this share of the cheese's effect counts as 'stopped working'."""


@dataclass(frozen=True)
class CheeseVectorLayer:
    """The effect of subtracting the cheese vector at one hook point."""

    layer: str
    """The hook point."""
    source: VectorSource
    """Which vector."""
    p_cheese: float
    """Mean probability of the move toward the cheese, cheese present, nothing subtracted."""
    p_no_cheese: float
    """The same with the cheese removed from the maze."""
    p_subtracted: float
    """The same with the cheese present and the vector subtracted."""
    removed: float
    """(p_cheese - p_subtracted) / (p_cheese - p_no_cheese): the share of the cheese's effect removed."""


@dataclass(frozen=True)
class CheeseVectorSweep:
    """Every hook point, both vectors, on the same decision squares."""

    layers: list[str]
    """The hook points in forward order."""
    n_mazes: int
    """Test mazes with a decision square."""
    effects: list[CheeseVectorLayer]
    """One entry per (source, layer)."""
    stops_working: dict[str, str | None]
    """Per source, the first hook point from which on every later one removes less than half of the effect
    (None: it works up to the last)."""

    def removed(self, source: VectorSource) -> list[float]:
        return [e.removed for e in self.effects if e.source == source]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "threshold": STOPS_WORKING}


def _at_decisions(mazes: Sequence[Maze], decisions: Sequence[Decision]) -> list[Maze]:
    return [m.with_mouse(d.square) for m, d in zip(mazes, decisions, strict=True)]


def _difference(policy: MazePolicy, mazes: list[Maze], layer: str) -> torch.Tensor:
    """Per maze, activation with cheese minus without [maze, ...]."""
    grid = policy.grid
    _, with_cheese = policy.run_with_cache(observe(mazes, grid), layer)
    _, without = policy.run_with_cache(observe([m.with_cheese(None) for m in mazes], grid), layer)
    return with_cheese[layer] - without[layer]


def _toward_cheese(logits: torch.Tensor, decisions: Sequence[Decision]) -> torch.Tensor:
    actions = torch.tensor([d.cheese_action for d in decisions])
    return torch.softmax(logits, -1)[torch.arange(len(actions)), actions]


def _first_failing(layers: list[str], removed: list[float]) -> str | None:
    for i in range(len(layers)):
        if all(r < STOPS_WORKING for r in removed[i:]):
            return layers[i]
    return None


def cheese_vector_sweep(
    policy: MazePolicy,
    test: tuple[list[Maze], list[Decision]],
    vector_mazes: tuple[list[Maze], list[Decision]],
    on_progress: OnProgress | None = None,
) -> CheeseVectorSweep:
    """Subtract each vector at every hook point of ``policy`` on the ``test`` mazes' decision squares."""
    mazes, decisions = test
    at_decision = _at_decisions(mazes, decisions)
    grid, layers = policy.grid, policy.hook_names
    averaging = _at_decisions(*vector_mazes)
    effects: list[CheeseVectorLayer] = []
    with torch.no_grad():
        obs = observe(at_decision, grid)
        p_cheese = _toward_cheese(policy(obs), decisions)
        p_none = _toward_cheese(policy(observe([m.with_cheese(None) for m in at_decision], grid)), decisions)
        for layer in track(layers, "cheese vector by layer", on_progress):
            vectors: dict[str, torch.Tensor] = {  # [1, ...] broadcasts over the test mazes
                "averaged": _difference(policy, averaging, layer).mean(0, keepdim=True),
                "same_maze": _difference(policy, [m.with_mouse(m.start) for m in mazes], layer),
            }
            for source in get_args(VectorSource):
                vector = vectors[source]

                def subtract(x: torch.Tensor, hook: HookPoint, vector: torch.Tensor = vector) -> torch.Tensor:
                    return x - vector

                with policy.hooks([(layer, subtract)]):
                    p_sub = _toward_cheese(policy(obs), decisions)
                gap = float((p_cheese - p_none).mean())
                removed = float((p_cheese - p_sub).mean()) / gap if abs(gap) > 1e-9 else float("nan")
                effects.append(
                    CheeseVectorLayer(
                        layer, source, float(p_cheese.mean()), float(p_none.mean()), float(p_sub.mean()), removed
                    )
                )
    stops = {
        source: _first_failing(layers, [e.removed for e in effects if e.source == source])
        for source in get_args(VectorSource)
    }
    return CheeseVectorSweep(layers, len(mazes), effects, stops)
