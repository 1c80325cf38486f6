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

import torch
from jaxtyping import Float
from torch import nn

from circuitscope.progress import OnProgress
from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.superposition_step import TrainingStep, instance_chunks
from circuitscope.toy.threads import fastest_count, torch_threads

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
    """Threads training (each runs torch on one thread; torch's count is restored afterwards); None: measured,
    1 or 2 (:func:`choose_threads`)."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or not self.lr > 0:
            raise LabConfigError(
                f"steps ({self.steps}) and batch_size ({self.batch_size}) must be at least 1 and lr ({self.lr}) "
                "positive"
            )
        if self.threads is not None and self.threads < 1:
            raise LabConfigError(f"threads must be at least 1 (or None to measure), got {self.threads}")


PAPER_TRAINING = TrainingOptions()
"""The paper's settings: 10,000 steps of batch 1024, lr 1e-3 (seed 0, threads measured)."""


def choose_threads(
    W: torch.Tensor, b: torch.Tensor, importance: torch.Tensor, probability: torch.Tensor, options: TrainingOptions
) -> int:
    """Training threads (1 or 2, each running torch on one thread), measured on this machine as it is now.

    A step is timed on 1 and on 2 threads (:func:`~circuitscope.toy.threads.fastest_count`; repeated up to
    about 2M batch entries, at most 10 steps, per timing) with features from other generators, so the run
    itself is unchanged. On a busy machine the second thread may gain nothing, on a free one it takes half
    of the chunks (measured: benchmarks/RESULTS_toy.md). One chunk of instances, or torch allowed one
    thread: 1, untimed.
    """
    n_instances, n_features = importance.shape
    chunks = len(instance_chunks(n_instances, options.batch_size, n_features))
    candidates = tuple(n for n in (1, 2) if n <= min(chunks, torch.get_num_threads()))
    if len(candidates) < 2:
        return 1
    repeat = min(10, max(1, (1 << 21) // (n_instances * n_features * options.batch_size)))
    steps = {
        n: TrainingStep(W, b, importance, probability, batch_size=options.batch_size, seed=options.seed + 1, threads=n)
        for n in candidates
    }
    try:
        with torch_threads(1):
            return fastest_count(lambda n: [steps[n].gradients(with_loss=False) for _ in range(repeat)], candidates)
    finally:
        for step in steps.values():
            step.__exit__()


@dataclass(frozen=True)
class TrainingTime:
    """Where one training run's time went, and the thread count it ran on."""

    seconds: float
    """Wall-clock seconds of the training loop."""
    sampling_seconds: float
    """Of those, the seconds spent drawing the features (with several threads: the wall time times the share of
    the threads' summed time spent drawing)."""
    threads: int
    """Threads the loop ran on, each running torch on one thread."""

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
    importance, probability = importance.float().contiguous(), probability.float().contiguous()
    optimizer = torch.optim.Adam([model.W, model.b_final], lr=options.lr, fused=True)
    losses: list[torch.Tensor] = []
    threads = options.threads or choose_threads(model.W, model.b_final, importance, probability, options)
    start = time.perf_counter()
    with (
        torch_threads(1),  # each training thread runs torch on one thread
        TrainingStep(
            model.W,
            model.b_final,
            importance,
            probability,
            batch_size=options.batch_size,
            seed=options.seed,
            threads=threads,
        ) as step,
    ):
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
    seconds = time.perf_counter() - start
    spent = TrainingTime(seconds, seconds * step.sampling_share, step.threads)
    values = torch.stack(losses).tolist()
    if not all(math.isfinite(v) for v in values):
        raise FloatingPointError(f"the training loss became {values[-1]}; lower the lr")
    if on_progress is not None:
        on_progress(description, steps, steps)
    return TrainedInstances(model.eval(), values, spent)


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
