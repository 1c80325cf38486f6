"""A trained model against gradient descent: predictions, sensitivities, weights, and lengths beyond training.

The measures of von Oswald et al. (2023), section 3: on the same held-out tasks, the mean squared
difference and the cosine between the model's query predictions and those of ``k`` GD steps; the
cosine, per task, between the sensitivities ``d prediction / d x_q`` of the two (and ``d prediction /
d context``, every context token's ``x`` and ``y``), averaged over the tasks; and, for linear
self-attention, how close each layer's merged weights are to the GD construction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from circuitscope.toy.icl.models import LinearSelfAttention
from circuitscope.toy.icl.tasks import RegressionTasks, gd_predictions, least_squares_predictions, sample_tasks

__all__ = [
    "GDComparison",
    "LengthCurve",
    "compare_with_gd",
    "construction_fit",
    "least_squares_curve",
    "length_curve",
    "length_tasks",
    "query_readout",
]


@dataclass(frozen=True)
class GDComparison:
    """One model against ``gd_steps`` steps of gradient descent on the same held-out tasks."""

    gd_steps: int
    """Steps of gradient descent compared with."""
    gd_lr: float
    """Their learning rate (the line search's best on training tasks, the same for every step), from
    ``w = 0``."""
    # the predictions
    model_loss: float
    """The model's query MSE."""
    gd_loss: float
    """Gradient descent's query MSE, on the same tasks: the model does better than GD when it runs another
    algorithm (more steps, preconditioning, least squares)."""
    prediction_mse: float
    """Mean of (model prediction - GD prediction)^2."""
    prediction_cosine: float
    """Cosine between the model's and GD's predictions over the tasks (a vector of one entry per task)."""
    query_sensitivity_cosine: float
    """Mean over tasks of the cosine between d prediction / d x_q of the model and of GD."""
    context_sensitivity_cosine: float
    """Mean over tasks of the cosine between d prediction / d (every context x_i and y_i) of the two
    (the paper's second sensitivity: how each example moves the answer)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _sensitivities(predict: Any, tokens: torch.Tensor) -> torch.Tensor:
    """d prediction / d tokens for every task [batch pos d+1] (tasks are independent, so one backward pass)."""
    inputs = tokens.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(predict(inputs).sum(), inputs)
    return grad


def _mean_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1), dim=1, eps=1e-12).mean())


def compare_with_gd(model: nn.Module, tasks: RegressionTasks, gd_lr: float, gd_steps: int) -> GDComparison:
    """The measures of the module docstring for ``model`` on ``tasks``."""
    with torch.no_grad():
        pred = model(tasks.tokens)
        gd = gd_predictions(tasks.tokens, gd_lr, gd_steps)
    model_grad = _sensitivities(model, tasks.tokens)
    gd_grad = _sensitivities(lambda t: gd_predictions(t, gd_lr, gd_steps), tasks.tokens)
    d = tasks.tokens.shape[-1] - 1
    return GDComparison(
        gd_steps=gd_steps,
        gd_lr=gd_lr,
        model_loss=float((pred - tasks.targets).pow(2).mean()),
        gd_loss=float((gd - tasks.targets).pow(2).mean()),
        prediction_mse=float((pred - gd).pow(2).mean()),
        prediction_cosine=float(torch.nn.functional.cosine_similarity(pred, gd, dim=0)),
        query_sensitivity_cosine=_mean_cosine(model_grad[:, -1, :d], gd_grad[:, -1, :d]),
        context_sensitivity_cosine=_mean_cosine(model_grad[:, :-1], gd_grad[:, :-1]),
    )


def query_readout(W_KQ: torch.Tensor, W_PV: torch.Tensor) -> torch.Tensor:
    """What one layer adds to the query's ``y`` entry as a tensor ``T`` [d+1 d+1 d]: the layer adds
    ``(1/n) sum_i sum_jk T[j, k, :] . x_q e_i[j] e_i[k]``, summed over the heads of ``W_KQ``, ``W_PV`` [head d+1 d+1]
    (only ``W_PV``'s last row writes ``y``; the query's ``y`` is 0, so only ``W_KQ``'s first ``d`` columns count)."""
    d = W_KQ.shape[-1] - 1
    return torch.einsum("hj,hkl->jkl", W_PV[:, d, :], W_KQ[:, :, :d])


def construction_fit(model: LinearSelfAttention) -> tuple[list[float], list[float]]:
    """Per layer, the cosine between :func:`query_readout` of the learned weights and of the GD construction
    (``W_KQ = [[I, 0], [0, 0]]``, ``W_PV = [[0, 0], [0, -eta]]``: ``T[d, :d, :] = -eta I``, zero elsewhere; the
    cosine is blind to how the scale is split between the two matrices), and the learning rate ``eta`` of the
    construction closest to the learned weights (the projection of ``T`` on it)."""
    W_KQ, W_PV = model.merged_weights()
    d = model.d
    unit = torch.zeros(d + 1, d + 1, d)
    unit[d, :d, :] = -torch.eye(d)  # the construction at eta = 1
    cosines, rates = [], []
    for layer in range(model.n_layers):
        readout = query_readout(W_KQ[layer], W_PV[layer])
        cosines.append(float(torch.nn.functional.cosine_similarity(readout.flatten(), unit.flatten(), dim=0)))
        rates.append(float((readout * unit).sum() / unit.pow(2).sum()))
    return cosines, rates


@dataclass(frozen=True)
class LengthCurve:
    """Query MSE against the number of context pairs (the lengths past training are unseen)."""

    lengths: list[int]
    """Context pairs of each point."""
    model_loss: list[float]
    """The model's query MSE at each length."""
    gd_loss: list[float]
    """The compared GD's query MSE at each length (the same learning rate throughout)."""
    cosine: list[float]
    """Cosine between the model's and GD's predictions at each length."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def length_tasks(config_seed: int, lengths: list[int], n_tasks: int, d: int, noise: float) -> list[RegressionTasks]:
    """Held-out tasks of each length, the same for every model (seeded by ``config_seed`` and the length)."""
    return [
        sample_tasks(torch.Generator().manual_seed(30_000 + 97 * config_seed + n), n_tasks, n, d, noise)
        for n in lengths
    ]


def length_curve(model: nn.Module, tasks: list[RegressionTasks], gd_lr: float, gd_steps: int) -> LengthCurve:
    """:class:`LengthCurve` of ``model`` on ``tasks`` (one batch per length, from :func:`length_tasks`)."""
    losses, gd_losses, cosines = [], [], []
    with torch.no_grad():
        for batch in tasks:
            pred, gd = model(batch.tokens), gd_predictions(batch.tokens, gd_lr, gd_steps)
            losses.append(float((pred - batch.targets).pow(2).mean()))
            gd_losses.append(float((gd - batch.targets).pow(2).mean()))
            cosines.append(float(torch.nn.functional.cosine_similarity(pred, gd, dim=0)))
    return LengthCurve([b.tokens.shape[1] - 1 for b in tasks], losses, gd_losses, cosines)


def least_squares_curve(tasks: list[RegressionTasks], noise: float) -> list[float]:
    """The posterior-mean learner's query MSE on each batch of ``tasks`` (the floor of every learner)."""
    return [float((least_squares_predictions(b.tokens, noise) - b.targets).pow(2).mean()) for b in tasks]
