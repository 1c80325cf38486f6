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

import numpy as np
import torch
from jaxtyping import Float
from torch import nn

from circuitscope.progress import OnProgress
from circuitscope.toy.errors import LabConfigError

__all__ = [
    "Interference",
    "SuperpositionModel",
    "choose_threads",
    "dimensions_per_feature",
    "feature_dimensionality",
    "feature_generator",
    "feature_superposition",
    "interference",
    "loss_and_grads",
    "sample_features",
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
    generator: np.random.Generator,
    batch: int,
    probability: Float[torch.Tensor, "instance feature"],
    out: Float[torch.Tensor, "instance batch feature"] | None = None,
) -> Float[torch.Tensor, "instance batch feature"]:
    """Uniform values, each present with its probability, from one uniform draw per entry.

    With ``u`` uniform on [0, 1), ``max(0, 1 - u / p)`` is non-zero exactly when ``u < p`` (probability ``p``)
    and, given that, uniform on (0, 1]: presence and value from the same number. The layout is
    [instance, batch, feature], the one the batched matrix products of training read without a copy.
    The draws come from numpy's generator (about twice as fast as ``torch.rand`` on a CPU), written into
    ``out`` (a contiguous float32 tensor of that shape, reused between steps) when given.
    """
    n_instances, n_features = probability.shape
    if out is None:
        out = torch.empty(n_instances, batch, n_features)
    generator.random(out=out.numpy(), dtype=np.float32)
    return out.mul_((-1.0 / probability)[:, None, :]).add_(1.0).relu_()


def feature_generator(seed: int) -> np.random.Generator:
    """The generator of :func:`sample_features` for a seed (SFC64: a fast, well-tested bit generator)."""
    return np.random.Generator(np.random.SFC64(seed))


def loss_and_grads(
    W: Float[torch.Tensor, "instance hidden feature"],
    b: Float[torch.Tensor, "instance feature"],
    x: Float[torch.Tensor, "instance batch feature"],
    importance: Float[torch.Tensor, "instance feature"],
    *,
    with_loss: bool = True,
    buffers: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """The loss of :class:`SuperpositionModel` summed over instances and its gradients in closed form.

    ``h = W x``, ``y = ReLU(Wᵀ h + b)``, ``L = Σ_i I_i mean_b (y_i - x_i)²``; with ``d = (y - x) [y > 0]`` and
    ``s = 2 I / batch``: ``∂L/∂b = s Σ_b d``, ``∂L/∂W = h ⊗ (s d) + (W (s d)) ⊗ x``. Five batched matrix
    products and a few in-place passes over the batch, instead of autograd's graph of temporaries (the
    tests compare both). ``buffers``: two float32 tensors shaped like ``x`` to compute in, reused between
    steps (a fresh batch-sized tensor per step costs more in page faults than the arithmetic on it).
    Returns ``(loss or None, grad_W, grad_b)``.
    """
    batch = x.shape[1]
    scale = (2.0 / batch) * importance  # [instance, feature]
    h = torch.bmm(x, W.transpose(1, 2))  # [instance, batch, hidden]
    pre, d = buffers if buffers is not None else (torch.empty_like(x), torch.empty_like(x))
    torch.baddbmm(b[:, None, :], h, W, out=pre)  # [instance, batch, feature]
    torch.sub(pre, x, out=d)
    # y - x where the ReLU is active: ReLU's own backward kernel (gradient, input, threshold), in place
    torch.ops.aten.threshold_backward.grad_input(d, pre, 0.0, grad_input=d)
    loss = None
    if with_loss:  # the residual where the ReLU is off is -x, not the gradient's 0
        loss = ((pre.clamp_min(0) - x).square().sum(1) * importance).sum() / batch
    ds_W = torch.bmm(d, (W * scale[:, None, :]).transpose(1, 2))  # (s d) Wᵀ, [instance, batch, hidden]
    grad_W = torch.bmm(h.transpose(1, 2), d).mul_(scale[:, None, :])
    grad_W.baddbmm_(ds_W.transpose(1, 2), x)
    grad_b = d.sum(1).mul_(scale)
    return loss, grad_W, grad_b


def choose_threads(n_features: int, n_hidden: int, n_instances: int, batch_size: int) -> int:
    """torch threads for training at this size: 1 (measured fastest for every lab experiment on 2 cores).

    Small problems lose more to thread hand-off than they gain; the largest lab experiment (200 -> 20,
    20 instances, batch 1024) measured faster on 1 thread than on 2 too (benchmarks/RESULTS_toy.md), so
    the size only matters above that.
    """
    work = n_features * n_hidden * n_instances * batch_size
    return 1 if work <= 200 * 20 * 20 * 1024 else min(2, torch.get_num_threads())


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
    log_every: int = 100,
    threads: int | None = None,
    description: str = "superposition",
    on_progress: OnProgress | None = None,
) -> tuple[SuperpositionModel, list[float]]:
    """Train one instance per row of ``importance``/``probability`` (Adam, constant lr, no weight decay).

    Returns the model and the batch loss (before the update) at steps 0, ``log_every``, ... and the last
    step. ``threads``: torch threads while training (restored afterwards); None picks
    :func:`choose_threads`. ``on_progress(description, steps_done, steps)`` is told the training steps,
    every ``log_every`` steps and at the end.
    """
    if importance.shape != probability.shape or importance.shape[-1] != n_features:
        raise LabConfigError(
            f"importance {tuple(importance.shape)} and probability {tuple(probability.shape)} must both be "
            f"[n_instances, n_features={n_features}]"
        )
    if not bool(((probability > 0) & (probability <= 1)).all()):
        raise LabConfigError("feature probabilities (1 - sparsity) must lie in (0, 1]")
    if steps < 1 or batch_size < 1 or log_every < 1 or not lr > 0:
        raise LabConfigError(
            f"steps ({steps}), batch_size ({batch_size}) and log_every ({log_every}) must be at least 1 and "
            f"lr ({lr}) positive"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SuperpositionModel(n_features, n_hidden, importance.shape[0])
    importance = importance.float()
    probability = probability.float()
    generator = feature_generator(seed)
    x = torch.empty(importance.shape[0], batch_size, n_features)
    buffers = (torch.empty_like(x), torch.empty_like(x))
    W, b = model.W, model.b_final
    optimizer = torch.optim.Adam([W, b], lr=lr, fused=True)
    losses: list[torch.Tensor] = []
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or choose_threads(n_features, n_hidden, importance.shape[0], batch_size))
    try:
        if on_progress is not None:
            on_progress(description, 0, steps)
        for step in range(steps):
            log = step % log_every == 0 or step == steps - 1
            with torch.no_grad():
                sample_features(generator, batch_size, probability, out=x)
                loss, W.grad, b.grad = loss_and_grads(W, b, x, importance, with_loss=log, buffers=buffers)
            optimizer.step()
            if loss is not None:
                losses.append(loss)
                if on_progress is not None:
                    on_progress(description, step + 1, steps)
    finally:
        torch.set_num_threads(previous)
    values = torch.stack(losses).tolist()
    if not all(math.isfinite(v) for v in values):
        raise FloatingPointError(f"the training loss became {values[-1]}; lower the lr")
    if on_progress is not None:
        on_progress(description, steps, steps)
    return model.eval(), values


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
