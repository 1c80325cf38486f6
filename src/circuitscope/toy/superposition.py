"""The toy model of superposition (Elhage et al. 2022) and its measurements.

Model (one per *instance*, all trained in parallel): ``x' = ReLU(W^T W x + b)`` with
``W`` [n_hidden, n_features]. Each feature is uniform on [0, 1) and present (non-zero) with
probability ``p = 1 - S`` (``S`` is the sparsity); the loss is the importance-weighted MSE
``sum_i I_i (x_i - x'_i)^2``, averaged over the batch and summed over instances.

Measurements on the trained ``W`` (column ``W_i`` is feature i's direction):

- ``D* = m / ||W||_F^2``: hidden dimensions per embedded feature;
- ``D_i = ||W_i||^2 / sum_j (Ŵ_i · W_j)^2``: the fraction of a dimension feature i gets;
- superposition of feature i: ``sum_{j != i} (Ŵ_i · W_j)^2``;
- interference: max and mean ``|cos|`` between the directions of represented features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import nn

from circuitscope.progress import OnProgress
from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.trainer import TrainConfig, seeded_batches, train

__all__ = [
    "Interference",
    "SuperpositionModel",
    "dimensions_per_feature",
    "feature_dimensionality",
    "feature_superposition",
    "interference",
    "train_superposition",
]


class SuperpositionModel(nn.Module):
    """``n_instances`` independent models ``x' = ReLU(W^T W x + b)``."""

    def __init__(self, n_features: int, n_hidden: int, n_instances: int) -> None:
        super().__init__()
        if n_features < 1 or n_hidden < 1 or n_instances < 1:
            raise LabConfigError("n_features, n_hidden and n_instances must all be at least 1")
        self.W = nn.Parameter(torch.empty(n_instances, n_hidden, n_features))
        nn.init.xavier_normal_(self.W)
        self.b_final = nn.Parameter(torch.zeros(n_instances, n_features))

    def forward(
        self, x: Float[torch.Tensor, "batch instance feature"]
    ) -> Float[torch.Tensor, "batch instance feature"]:
        hidden = torch.einsum("bif,ihf->bih", x, self.W)  # [batch, instance, hidden]
        out = torch.einsum("bih,ihf->bif", hidden, self.W)  # [batch, instance, feature]
        return torch.relu(out + self.b_final)


def sample_features(
    generator: torch.Generator, batch: int, probability: Float[torch.Tensor, "instance feature"]
) -> Float[torch.Tensor, "batch instance feature"]:
    """Uniform [0, 1) values, each present with its probability."""
    shape = (batch, *probability.shape)
    values = torch.rand(shape, generator=generator)
    present = torch.rand(shape, generator=generator) < probability
    return values * present


def train_superposition(
    n_features: int,
    n_hidden: int,
    importance: Float[torch.Tensor, "instance feature"],
    probability: Float[torch.Tensor, "instance feature"],
    *,
    steps: int = 10_000,
    batch_size: int = 1024,
    lr: float = 1e-3,
    seed: int = 0,
    description: str = "superposition",
    on_progress: OnProgress | None = None,
) -> tuple[SuperpositionModel, list[float]]:
    """Train one instance per row of ``importance``/``probability`` (AdamW, constant lr, no weight decay).

    ``on_progress(description, steps_done, steps)`` is told the training steps.
    """
    if importance.shape != probability.shape or importance.shape[-1] != n_features:
        raise LabConfigError(
            f"importance {tuple(importance.shape)} and probability {tuple(probability.shape)} must both be "
            f"[n_instances, n_features={n_features}]"
        )
    if not bool(((probability > 0) & (probability <= 1)).all()):
        raise LabConfigError("feature probabilities (1 - sparsity) must lie in (0, 1]")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SuperpositionModel(n_features, n_hidden, importance.shape[0])

    def loss_fn(m: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        (x,) = batch
        return (importance * (x - m(x)) ** 2).mean(0).sum()

    config = TrainConfig(steps=steps, lr=lr, seed=seed, checkpoint_every=steps, weight_decay=0.0)
    result = train(
        model,
        loss_fn,
        seeded_batches(lambda g: (sample_features(g, batch_size, probability),), seed),
        config,
        description=description,
        on_progress=on_progress,
    )
    return model, result.loss


def dimensions_per_feature(W: Float[torch.Tensor, "... hidden feature"]) -> Float[torch.Tensor, "..."]:
    """``D* = m / ||W||_F^2`` (m = number of hidden dimensions)."""
    return W.shape[-2] / W.pow(2).sum((-2, -1))


def _overlaps(W: torch.Tensor) -> torch.Tensor:
    """``(Ŵ_i · W_j)^2`` as [..., i, j]."""
    unit = W / W.norm(dim=-2, keepdim=True).clamp_min(1e-12)
    return (unit.transpose(-1, -2) @ W).pow(2)


def feature_dimensionality(W: Float[torch.Tensor, "... hidden feature"]) -> Float[torch.Tensor, "... feature"]:
    """``D_i = ||W_i||^2 / sum_j (Ŵ_i · W_j)^2`` (0 for a feature that is not represented)."""
    norm2 = W.pow(2).sum(-2)
    denom = _overlaps(W).sum(-1)
    return torch.where(norm2 > 1e-10, norm2 / denom.clamp_min(1e-12), torch.zeros_like(norm2))


def feature_superposition(W: Float[torch.Tensor, "... hidden feature"]) -> Float[torch.Tensor, "... feature"]:
    """``sum_{j != i} (Ŵ_i · W_j)^2``: how much other features share feature i's direction."""
    o = _overlaps(W)
    return o.sum(-1) - o.diagonal(dim1=-2, dim2=-1)


@dataclass(frozen=True)
class Interference:
    """Interference between represented features of one instance, and the random-direction scale."""

    max_abs_cos: float
    """Largest ``|cos|`` between two represented features (0 if fewer than two)."""
    mean_abs_cos: float
    """Mean ``|cos|`` over pairs of represented features."""
    n_represented: int
    """Features with ``||W_i|| > threshold``."""
    random_max_abs_cos: float
    """The same max for as many random directions in the same dimension (Johnson–Lindenstrauss scale)."""
    random_mean_abs_cos: float
    """The same mean for random directions: about ``sqrt(2 / (pi m))``."""


def interference(W: Float[torch.Tensor, "hidden feature"], threshold: float = 0.5, seed: int = 0) -> Interference:
    """|cos| between the directions of features with norm above ``threshold``, beside random directions."""
    m = W.shape[0]
    keep = W.norm(dim=0) > threshold
    n = int(keep.sum())
    if n < 2:
        return Interference(0.0, 0.0, n, 0.0, 0.0)

    def stats(vectors: torch.Tensor) -> tuple[float, float]:
        unit = vectors / vectors.norm(dim=0, keepdim=True)
        cos = (unit.T @ unit).abs()
        off = cos[~torch.eye(cos.shape[0], dtype=torch.bool)]
        return float(off.max()), float(off.mean())

    mx, mean = stats(W[:, keep].detach())
    rnd = torch.randn(m, n, generator=torch.Generator().manual_seed(seed), dtype=W.dtype)
    rmx, rmean = stats(rnd)
    return Interference(mx, mean, n, rmx, rmean)


def random_scale(m: int) -> float:
    """Mean |cos| of two random directions in m dimensions, ``sqrt(2 / (pi m))`` for large m."""
    return math.sqrt(2.0 / (math.pi * m))
