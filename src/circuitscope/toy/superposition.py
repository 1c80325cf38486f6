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
import time
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import nn

from circuitscope.progress import OnProgress
from circuitscope.toy.errors import LabConfigError

__all__ = [
    "PAPER_TRAINING",
    "Interference",
    "SuperpositionModel",
    "TrainedInstances",
    "TrainingOptions",
    "TrainingTime",
    "choose_threads",
    "dimensions_per_feature",
    "feature_dimensionality",
    "feature_generator",
    "feature_superposition",
    "instance_chunks",
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
    return torch.addcmul(out.new_ones(()), out, (-1.0 / probability)[:, None, :], out=out).relu_()


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
    ``s = 2 I / batch``: ``∂L/∂b = s Σ_b d``, ``∂L/∂W = h ⊗ (s d) + (W (s d)) ⊗ x``. The bias rides in the
    products as an extra hidden unit that is always 1 (``h₁ = [h, 1]``, ``W_b = [W; b]``: ``Wᵀ h + b = W_bᵀ h₁``
    and ``h₁ ⊗ d`` holds ``Σ_b d`` in its last row), so one pass over the batch is four batched matrix
    products and two in-place passes, instead of autograd's graph of temporaries (the tests compare
    both). ``buffers``: two float32 tensors shaped like ``x`` to compute in, reused between steps (a
    fresh batch-sized tensor per step costs more in page faults than the arithmetic on it).
    Returns ``(loss or None, grad_W, grad_b)``.
    """
    n_instances, batch, n_features = x.shape
    n_hidden = W.shape[1]
    scale = ((2.0 / batch) * importance)[:, None, :]  # [instance, 1, feature]
    one = torch.zeros(n_hidden + 1)
    one[n_hidden] = 1.0  # added to every row of x W₀ᵀ: the constant hidden unit
    W0 = torch.cat([W, W.new_zeros(n_instances, 1, n_features)], 1)  # [instance, hidden + 1, feature]
    h1 = torch.baddbmm(one, x, W0.transpose(1, 2))  # [instance, batch, hidden + 1] = [h, 1]
    pre, d = buffers if buffers is not None else (torch.empty_like(x), torch.empty_like(x))
    torch.bmm(h1, torch.cat([W, b[:, None, :]], 1), out=pre)  # Wᵀ h + b, [instance, batch, feature]
    torch.sub(pre, x, out=d)
    # y - x where the ReLU is active: ReLU's own backward kernel (gradient, input, threshold), in place
    torch.ops.aten.threshold_backward.grad_input(d, pre, 0.0, grad_input=d)
    loss = None
    if with_loss:  # the residual where the ReLU is off is -x, not the gradient's 0
        loss = ((pre.clamp_min(0) - x).square().sum(1) * importance).sum() / batch
    ds_W = torch.bmm(d, (W * scale).transpose(1, 2))  # (s d) Wᵀ, [instance, batch, hidden]
    grad = torch.bmm(h1.transpose(1, 2), d).mul_(scale)  # [instance, hidden + 1, feature]: [h ⊗ s d; s Σ_b d]
    grad_W = grad[:, :n_hidden].baddbmm_(ds_W.transpose(1, 2), x)
    return loss, grad_W, grad[:, n_hidden]


CHUNK_ENTRIES = 1 << 18
"""Batch entries (instances x batch x features, float32) one pass of training computes on: the chunk's
batch-sized buffers (features, pre-activations, residuals) then stay in a core's 2 MB cache instead of
streaming through memory; larger problems are trained a few instances at a time."""


def instance_chunks(n_instances: int, batch_size: int, n_features: int) -> list[slice]:
    """Consecutive instance ranges of at most ``CHUNK_ENTRIES`` batch entries each (at least one instance)."""
    per = max(1, CHUNK_ENTRIES // (batch_size * n_features))
    return [slice(i, min(i + per, n_instances)) for i in range(0, n_instances, per)]


def choose_threads(n_features: int, n_hidden: int, n_instances: int, batch_size: int) -> int:
    """torch threads for training at this size: 1 (measured fastest for every lab experiment on 2 cores).

    Small problems lose more to thread hand-off than they gain; the largest lab experiment (200 -> 20,
    20 instances, batch 1024) measured faster on 1 thread than on 2 too (benchmarks/RESULTS_toy.md), so
    the size only matters above that.
    """
    work = n_features * n_hidden * n_instances * batch_size
    return 1 if work <= 200 * 20 * 20 * 1024 else min(2, torch.get_num_threads())


@dataclass(frozen=True)
class TrainingOptions:
    """How the superposition models train (Adam, constant lr, no weight decay); the paper's settings by default."""

    steps: int = 10_000
    """Training steps."""
    batch_size: int = 1024
    """Feature vectors drawn per step and instance."""
    lr: float = 1e-3
    """Adam learning rate."""
    seed: int = 0
    """Seed of the initialisation and of the feature draws."""
    threads: int | None = None
    """torch threads while training (restored afterwards); None: :func:`choose_threads` picks by size."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or not self.lr > 0:
            raise LabConfigError(
                f"steps ({self.steps}) and batch_size ({self.batch_size}) must be at least 1 and lr ({self.lr}) "
                "positive"
            )
        if self.threads is not None and self.threads < 1:
            raise LabConfigError(f"threads must be at least 1 (or None to choose by size), got {self.threads}")


PAPER_TRAINING = TrainingOptions()
"""The paper's settings: 10,000 steps of batch 1024, lr 1e-3 (seed 0, threads chosen by size)."""


@dataclass(frozen=True)
class TrainingTime:
    """Where one training run's time went, and the thread count it ran on."""

    seconds: float
    """Wall-clock seconds of the training loop."""
    sampling_seconds: float
    """Of those, the seconds spent drawing the features."""
    threads: int
    """torch threads the loop ran on."""

    @property
    def sampling_share(self) -> float:
        """The fraction of the training time spent sampling."""
        return self.sampling_seconds / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, float | int]:
        return {
            "seconds": self.seconds,
            "sampling_seconds": self.sampling_seconds,
            "sampling_share": self.sampling_share,
            "threads": self.threads,
        }


@dataclass(frozen=True)
class TrainedInstances:
    """The result of :func:`train_superposition`."""

    model: SuperpositionModel
    losses: list[float]
    """Batch loss (before the update) at steps 0, ``log_every``, ... and the last step."""
    time: TrainingTime


def train_superposition(
    n_features: int,
    n_hidden: int,
    importance: Float[torch.Tensor, "instance feature"],
    probability: Float[torch.Tensor, "instance feature"],
    options: TrainingOptions = PAPER_TRAINING,
    *,
    log_every: int = 100,
    description: str = "superposition",
    on_progress: OnProgress | None = None,
) -> TrainedInstances:
    """Train one instance per row of ``importance``/``probability`` with ``options``.

    Returns the model, the batch losses and the time spent (sampling apart). ``on_progress(description,
    steps_done, steps)`` is told the training steps, every ``log_every`` steps and at the end.
    """
    if importance.shape != probability.shape or importance.shape[-1] != n_features:
        raise LabConfigError(
            f"importance {tuple(importance.shape)} and probability {tuple(probability.shape)} must both be "
            f"[n_instances, n_features={n_features}]"
        )
    if not bool(((probability > 0) & (probability <= 1)).all()):
        raise LabConfigError("feature probabilities (1 - sparsity) must lie in (0, 1]")
    if log_every < 1:
        raise LabConfigError(f"log_every must be at least 1, got {log_every}")
    steps, n_instances = options.steps, importance.shape[0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        model = SuperpositionModel(n_features, n_hidden, n_instances)
    step = _Step(model, importance.float(), probability.float(), options)
    optimizer = torch.optim.Adam([model.W, model.b_final], lr=options.lr, fused=True)
    losses: list[torch.Tensor] = []
    previous = torch.get_num_threads()
    threads = options.threads or choose_threads(n_features, n_hidden, n_instances, options.batch_size)
    torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        if on_progress is not None:
            on_progress(description, 0, steps)
        for i in range(steps):
            log = i % log_every == 0 or i == steps - 1
            loss = step.gradients(with_loss=log)  # into model.W.grad, model.b_final.grad
            optimizer.step()
            if loss is not None:
                losses.append(loss)
                if on_progress is not None:
                    on_progress(description, i + 1, steps)
    finally:
        torch.set_num_threads(previous)
    spent = TrainingTime(time.perf_counter() - start, step.sampling_seconds, threads)
    values = torch.stack(losses).tolist()
    if not all(math.isfinite(v) for v in values):
        raise FloatingPointError(f"the training loss became {values[-1]}; lower the lr")
    if on_progress is not None:
        on_progress(description, steps, steps)
    return TrainedInstances(model.eval(), values, spent)


class _Step:
    """One training step's sampling and closed-form gradients, a chunk of instances at a time.

    Each chunk (:func:`instance_chunks`) has its features and two work buffers [chunk, batch, feature],
    reused every step; the chunks draw their features in instance order from one generator.
    """

    def __init__(
        self, model: SuperpositionModel, importance: torch.Tensor, probability: torch.Tensor, options: TrainingOptions
    ) -> None:
        self.W, self.b = model.W, model.b_final
        self.importance, self.probability, self.batch = importance, probability, options.batch_size
        self.generator = feature_generator(options.seed)
        n_instances, n_features = importance.shape
        self.chunks = instance_chunks(n_instances, self.batch, n_features)
        self.buffers = [[torch.empty(c.stop - c.start, self.batch, n_features) for _ in range(3)] for c in self.chunks]
        self.grad_W, self.grad_b = torch.empty_like(self.W), torch.empty_like(self.b)
        self.W.grad, self.b.grad = self.grad_W, self.grad_b  # filled in place, chunk by chunk
        self.sampling_seconds = 0.0

    @torch.no_grad()
    def gradients(self, with_loss: bool) -> torch.Tensor | None:
        """Draw a batch, write the gradients into the parameters' ``.grad``; the loss if ``with_loss``."""
        loss = torch.zeros(()) if with_loss else None
        for c, (x, pre, d) in zip(self.chunks, self.buffers, strict=True):
            start = time.perf_counter()
            sample_features(self.generator, self.batch, self.probability[c], out=x)
            self.sampling_seconds += time.perf_counter() - start
            part, self.grad_W[c], self.grad_b[c] = loss_and_grads(
                self.W[c], self.b[c], x, self.importance[c], with_loss=with_loss, buffers=(pre, d)
            )
            if loss is not None and part is not None:
                loss += part
        return loss


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
