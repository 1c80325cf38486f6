"""In-context linear regression tasks and the learning algorithms the models are compared with.

A task draws ``w ~ N(0, I_d)``, ``n`` context inputs and one query ``x ~ U(-1, 1)^d`` (the paper's
choice) and ``y = w . x + noise``; it is given to a model as ``n + 1`` tokens ``(x_i, y_i)`` with the
query ``(x_q, 0)`` last (:func:`sample_tasks`). The references read the same tokens:
:func:`gd_predictions` runs ``k`` steps of gradient descent on the context's squared error
``L(w) = 1/(2n) sum_i (w . x_i - y_i)^2`` from ``w = 0`` and predicts ``w . x_q``;
:func:`best_gd_lr` finds its best learning rate by a line search on training tasks;
:func:`least_squares_predictions` is the posterior mean under the prior (ridge with the noise
variance; the minimum-norm fit without noise), the best any learner can do on average.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float

__all__ = ["RegressionTasks", "best_gd_lr", "gd_predictions", "least_squares_predictions", "sample_tasks"]


@dataclass(frozen=True)
class RegressionTasks:
    """A batch of tasks: the model's tokens, the query targets and the tasks' weights."""

    tokens: Float[torch.Tensor, "batch pos d_plus_1"]
    """``(x_i, y_i)`` for the context, ``(x_q, 0)`` last."""
    targets: Float[torch.Tensor, " batch"]
    """``y_q = w . x_q + noise``."""
    weights: Float[torch.Tensor, "batch d"]
    """Each task's ``w``."""


def sample_tasks(generator: torch.Generator, batch: int, n_context: int, d: int, noise: float = 0.0) -> RegressionTasks:
    """``batch`` tasks of ``n_context`` pairs and a query each, drawn from ``generator``."""
    w = torch.randn(batch, d, generator=generator)
    x = torch.rand(batch, n_context + 1, d, generator=generator) * 2 - 1
    y = torch.einsum("bpd,bd->bp", x, w)
    if noise > 0:
        y = y + noise * torch.randn(batch, n_context + 1, generator=generator)
    tokens = torch.cat([x, y[..., None]], -1)
    tokens[:, -1, -1] = 0.0
    return RegressionTasks(tokens=tokens, targets=y[:, -1], weights=w)


def _split(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Context inputs [batch n d], context targets [batch n] and the query input [batch d]."""
    return tokens[:, :-1, :-1], tokens[:, :-1, -1], tokens[:, -1, :-1]


def gd_predictions(tokens: torch.Tensor, lr: float | torch.Tensor, steps: int = 1) -> Float[torch.Tensor, " batch"]:
    """The query predictions after ``steps`` steps of gradient descent (rate ``lr``) on each context, from w = 0.

    Differentiable in ``tokens`` (for the sensitivities) and in ``lr``.
    """
    x, y, x_q = _split(tokens)
    w = torch.zeros_like(x_q)
    for _ in range(steps):
        residual = y - torch.einsum("bnd,bd->bn", x, w)
        w = w + lr * torch.einsum("bn,bnd->bd", residual, x) / x.shape[1]
    return torch.einsum("bd,bd->b", w, x_q)


def best_gd_lr(tasks: RegressionTasks, steps: int = 1, lo: float = 1e-3, hi: float = 1e3, iters: int = 30) -> float:
    """The learning rate minimising the query MSE of ``steps`` GD steps on ``tasks``.

    A scan of 25 rates spaced evenly in log scale over ``[lo, hi]``, then a golden-section search
    (in log scale) between the neighbours of the best one. For one step the prediction is linear in
    the rate, so the answer is the closed form ``sum(p y) / sum(p^2)`` with ``p`` the step at rate 1.
    """

    tokens, targets = tasks.tokens.double(), tasks.targets.double()  # float32 is too coarse near the minimum

    def loss(log_lr: float) -> float:
        pred = gd_predictions(tokens, math.exp(log_lr), steps)
        value = float((pred - targets).pow(2).mean())
        return value if math.isfinite(value) else math.inf

    grid = torch.linspace(math.log(lo), math.log(hi), 25).tolist()
    losses = [loss(g) for g in grid]
    best = min(range(len(grid)), key=losses.__getitem__)
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    c, e = b - ratio * (b - a), a + ratio * (b - a)
    fc, fe = loss(c), loss(e)
    for _ in range(iters):
        if fc < fe:
            b, e, fe = e, c, fc
            c = b - ratio * (b - a)
            fc = loss(c)
        else:
            a, c, fc = c, e, fe
            e = a + ratio * (b - a)
            fe = loss(e)
    return math.exp((a + b) / 2)


def least_squares_predictions(tokens: torch.Tensor, noise: float = 0.0) -> Float[torch.Tensor, " batch"]:
    """The posterior-mean prediction under ``w ~ N(0, I)``: ridge with ``noise**2``, minimum-norm without noise."""
    x, y, x_q = _split(tokens)
    if noise > 0:
        gram = x.transpose(1, 2) @ x + noise**2 * torch.eye(x.shape[-1], dtype=x.dtype)
        w = torch.linalg.solve(gram, torch.einsum("bnd,bn->bd", x, y))
    else:
        w = (torch.linalg.pinv(x) @ y[..., None])[..., 0]
    return torch.einsum("bd,bd->b", w, x_q)
