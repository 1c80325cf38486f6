"""A linear probe for the cheese's square, at every hook point of the policy.

The mouse stands on its start square and the cheese on any open square; the probe is multinomial
logistic regression (one class per square of the observation, L2-regularised, full-batch L-BFGS on
standardised features) from the flattened activation to the cheese's square, fit on three quarters of
the mazes and scored on the rest. (``circuitscope.probes`` fits binary probes, and the layering keeps
the toy labs from importing it, hence this multiclass one.) Chance is the most common square's share
of the held-out mazes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from circuitscope.progress import OnProgress, track
from circuitscope.toy.maze.grid import Maze, observe, offset
from circuitscope.toy.maze.policy import MazePolicy

__all__ = ["CheeseProbe", "cheese_probe", "fit_softmax_probe"]


@dataclass(frozen=True)
class CheeseProbe:
    """The probe's accuracy by layer: one entry of each list per probed hook point."""

    layers: list[str]
    """The hook points, in forward order."""
    train_accuracy: list[float]
    """Share of the fitting mazes whose cheese square the probe names exactly."""
    test_accuracy: list[float]
    """The same on the held-out quarter of the mazes."""
    n_train: int
    n_test: int
    chance: float
    """The most common cheese square's share of the held-out mazes."""

    def best_layer(self) -> str:
        """The hook point of the highest held-out accuracy."""
        return self.layers[max(range(len(self.layers)), key=self.test_accuracy.__getitem__)]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def fit_softmax_probe(
    x_train: torch.Tensor, y_train: torch.Tensor, n_classes: int, l2: float = 1e-3, max_iter: int = 100
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression on standardised features: (weight [d, classes], bias, mean, std)."""
    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
    z = (x_train - mean) / std
    w = torch.zeros(z.shape[1], n_classes, requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ w + b, y_train) + l2 * w.pow(2).sum() / 2
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach(), mean, std


def _accuracy(x: torch.Tensor, y: torch.Tensor, fitted: tuple[torch.Tensor, ...]) -> float:
    w, b, mean, std = fitted
    return float(((((x - mean) / std) @ w + b).argmax(-1) == y).float().mean())


def cheese_probe(
    policy: MazePolicy, mazes: Sequence[Maze], layers: Sequence[str], on_progress: OnProgress | None = None
) -> CheeseProbe:
    """Fit and score the probe at each of ``layers`` (mazes with their cheese; the mouse goes to the start)."""
    grid = policy.grid
    at_start = [m.with_mouse(m.start) for m in mazes]
    target = []
    for m in at_start:
        assert m.cheese is not None
        o = offset(m.size, grid)
        target.append((m.cheese[0] + o) * grid + m.cheese[1] + o)
    y = torch.tensor(target)
    n_train = len(mazes) * 3 // 4
    with torch.no_grad():
        _, cache = policy.run_with_cache(observe(at_start, grid), list(layers))
    train_accuracy, test_accuracy = [], []
    for layer in track(list(layers), "cheese probe by layer", on_progress):
        x = cache[layer].flatten(1)
        fitted = fit_softmax_probe(x[:n_train], y[:n_train], grid * grid)
        train_accuracy.append(_accuracy(x[:n_train], y[:n_train], fitted))
        test_accuracy.append(_accuracy(x[n_train:], y[n_train:], fitted))
    held_out = y[n_train:]
    chance = float(torch.bincount(held_out).max()) / len(held_out)
    return CheeseProbe(list(layers), train_accuracy, test_accuracy, n_train, len(mazes) - n_train, chance)
