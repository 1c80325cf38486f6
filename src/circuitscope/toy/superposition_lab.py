"""``circuitscope lab superposition``: the experiments of Toy Models of Superposition (Elhage et al. 2022).

1. ``sweep``: n features into m dimensions (default 5 into 2, importance 0.9^i) at several sparsities:
   feature directions and W^T W (dense: the m most important features, orthogonal; sparse:
   antipodal pairs, then a pentagon).
2. ``sweep`` with n = 20, m = 5, importance 0.7^i: per-feature norms and superposition.
3. ``geometry``: n = 200, m = 20, importance 1, 1/(1-S) from 1 to 20: D* per sparsity (plateau at
   1/2) and the per-feature dimensionalities D_i (clusters at 1, 3/4, 2/3, 1/2, 2/5, 3/8).
4. ``phase_diagram``: n = 2, m = 1 over relative importance and density.
Interference (max and mean |cos|) against random directions is measured for every sweep. Each
experiment trains with ``training`` (:class:`~circuitscope.toy.superposition.TrainingOptions`: the
paper's steps, batch, lr by default) and tells ``on_progress(stage, steps_done, steps)`` the steps.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from jaxtyping import Float

from circuitscope.progress import OnProgress
from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.superposition import (
    PAPER_TRAINING,
    Interference,
    TrainedInstances,
    TrainingOptions,
    TrainingTime,
    dimensions_per_feature,
    feature_dimensionality,
    feature_superposition,
    interference,
    train_superposition,
)

__all__ = [
    "GeometryResult",
    "PhaseDiagram",
    "SuperpositionLab",
    "SweepResult",
    "geometry_experiment",
    "phase_diagram",
    "sparsity_sweep",
]

DEFAULT_SPARSITIES = (0.0, 0.7, 0.9, 0.97, 0.99, 0.999)

REPRESENTED = 0.5
"""The norm ``||W_i||`` above which a feature counts as represented (the sweeps' counts, the phase diagram)."""


def _train(
    experiment: str,
    n_hidden: int,
    importance: torch.Tensor,
    probability: torch.Tensor,
    training: TrainingOptions,
    on_progress: OnProgress | None,
) -> tuple[Float[torch.Tensor, "instance hidden feature"], TrainedInstances]:
    """One model per row of ``importance`` and ``probability`` (both [instance, feature]), trained as the
    experiment's stage (``geometry 200->20``): the trained weights and the run."""
    n_features = importance.shape[-1]
    description = f"{experiment} {n_features}->{n_hidden}"
    run = train_superposition(
        n_features, n_hidden, importance, probability, training, description=description, on_progress=on_progress
    )
    return run.model.W.detach(), run


# Fields one per line, a docstring under each (the house style of results): alike in shape only, on purpose.
@dataclass(frozen=True)
class SweepResult:
    """One model per sparsity, n features into m dimensions."""

    n_features: int
    n_hidden: int
    sparsities: list[float]
    importance: Float[torch.Tensor, " feature"]
    W: Float[torch.Tensor, "sparsity hidden feature"]
    """Trained weights; column i of ``W[s]`` is feature i's direction."""
    b: Float[torch.Tensor, "sparsity feature"]
    norms: Float[torch.Tensor, "sparsity feature"]
    """``||W_i||`` per feature."""
    superposition: Float[torch.Tensor, "sparsity feature"]
    """``sum_{j != i} (Ŵ_i · W_j)^2``."""
    dimensions_per_feature: list[float]
    """D* per sparsity."""
    interference: list[Interference]
    final_loss: float
    time: TrainingTime
    """Training time, sampling apart, and threads."""

    def n_represented(self, threshold: float = REPRESENTED) -> list[int]:
        """Features with ``||W_i|| > threshold``, per sparsity."""
        return [int(k) for k in (self.norms > threshold).sum(-1)]


def sparsity_sweep(
    n_features: int = 5,
    n_hidden: int = 2,
    importance_decay: float = 0.9,
    sparsities: tuple[float, ...] = DEFAULT_SPARSITIES,
    *,
    training: TrainingOptions = PAPER_TRAINING,
    on_progress: OnProgress | None = None,
) -> SweepResult:
    """Train one model per sparsity (in parallel) with importance ``importance_decay ** i``."""
    if n_hidden >= n_features:
        raise LabConfigError(
            f"this experiment studies compression: n_hidden ({n_hidden}) must be smaller than n_features ({n_features})"
        )
    if not sparsities or not all(0 <= s < 1 for s in sparsities):
        raise LabConfigError(f"sparsities must lie in [0, 1), got {sparsities}")
    importance = importance_decay ** torch.arange(n_features, dtype=torch.float32)
    per_model = importance[None].expand(len(sparsities), -1).contiguous()  # [sparsity, feature]
    probability = torch.tensor([1 - s for s in sparsities])[:, None].expand(-1, n_features).contiguous()
    W, run = _train("superposition", n_hidden, per_model, probability, training, on_progress)
    return SweepResult(
        n_features=n_features,
        n_hidden=n_hidden,
        sparsities=list(sparsities),
        importance=importance,
        W=W,
        b=run.model.b_final.detach(),
        norms=W.norm(dim=1),
        superposition=feature_superposition(W),
        dimensions_per_feature=dimensions_per_feature(W).tolist(),
        interference=[interference(W[i], seed=training.seed) for i in range(len(sparsities))],
        final_loss=run.losses[-1],
        time=run.time,
    )


@dataclass(frozen=True)
class GeometryResult:
    """n = 200, m = 20 (by default) at many sparsities: D* and the per-feature dimensionalities."""

    n_features: int
    n_hidden: int
    inverse_density: list[float]
    """``1 / (1 - S)`` per model."""
    dimensions_per_feature: list[float]
    """D* = m / ||W||_F^2 per model."""
    feature_dimensionality: Float[torch.Tensor, "sparsity feature"]
    """D_i per feature (0 for features that are not represented)."""
    interference: list[Interference]
    time: TrainingTime
    """Training time, sampling apart, and threads."""

    def cluster_fractions(self, tolerance: float = 0.04) -> dict[str, float]:
        """Fraction of represented features whose D_i lies within ``tolerance`` of each paper cluster."""
        d = self.feature_dimensionality
        d = d[d > 0.05]
        out = {}
        for name, value in (("1", 1.0), ("3/4", 0.75), ("2/3", 2 / 3), ("1/2", 0.5), ("2/5", 0.4), ("3/8", 0.375)):
            out[name] = float(((d - value).abs() < tolerance).float().mean()) if d.numel() else 0.0
        return out


def geometry_experiment(
    n_features: int = 200,
    n_hidden: int = 20,
    n_sparsities: int = 20,
    max_inverse_density: float = 20.0,
    *,
    training: TrainingOptions = PAPER_TRAINING,
    on_progress: OnProgress | None = None,
) -> GeometryResult:
    """Uniform importance; ``1/(1-S)`` log-spaced from 1 to ``max_inverse_density``."""
    if n_hidden >= n_features:
        raise LabConfigError(f"n_hidden ({n_hidden}) must be smaller than n_features ({n_features})")
    if max_inverse_density < 1 or n_sparsities < 1:
        raise LabConfigError("max_inverse_density must be >= 1 and n_sparsities >= 1")
    inverse = torch.logspace(0, math.log10(max_inverse_density), n_sparsities)
    probability = (1 / inverse)[:, None].expand(-1, n_features).contiguous()
    uniform = torch.ones(n_sparsities, n_features)  # importance
    W, run = _train("geometry", n_hidden, uniform, probability, training, on_progress)
    return GeometryResult(
        n_features=n_features,
        n_hidden=n_hidden,
        inverse_density=inverse.tolist(),
        dimensions_per_feature=dimensions_per_feature(W).tolist(),
        feature_dimensionality=feature_dimensionality(W),
        interference=[interference(W[i], seed=training.seed) for i in range(n_sparsities)],
        time=run.time,
    )


@dataclass(frozen=True)
class PhaseDiagram:
    """n = 2, m = 1: what happens to feature 2 as its relative importance and density vary."""

    relative_importance: list[float]
    density: list[float]
    phase: list[list[str]]
    """[importance][density]: ``not represented``, ``dedicated`` (feature 2 alone) or ``superposition``."""
    w1: Float[torch.Tensor, "importance density"]
    w2: Float[torch.Tensor, "importance density"]
    time: TrainingTime
    """Training time, sampling apart, and threads."""


def phase_diagram(
    n_importance: int = 9,
    n_density: int = 9,
    *,
    threshold: float = REPRESENTED,
    training: TrainingOptions = PAPER_TRAINING,
    on_progress: OnProgress | None = None,
) -> PhaseDiagram:
    """Feature 1 has importance 1; feature 2 has importance 0.1..10 and both have density 0.01..1."""
    importance = torch.logspace(-1, 1, n_importance)
    density = torch.logspace(-2, 0, n_density)
    imp = torch.stack([torch.ones(n_importance * n_density), importance.repeat_interleave(n_density)], dim=1)
    prob = density.repeat(n_importance)[:, None].expand(-1, 2).contiguous()
    W_cells, run = _train("phase diagram", 1, imp, prob, training, on_progress)
    W = W_cells[:, 0]  # [cell, feature]
    w1, w2 = W[:, 0].reshape(n_importance, n_density), W[:, 1].reshape(n_importance, n_density)
    phase = []
    for i in range(n_importance):
        row = []
        for j in range(n_density):
            a, b = abs(float(w1[i, j])), abs(float(w2[i, j]))
            row.append("not represented" if b < threshold else ("superposition" if a >= threshold else "dedicated"))
        phase.append(row)
    return PhaseDiagram(importance.tolist(), density.tolist(), phase, w1, w2, run.time)


def _interference_list(items: list[Any]) -> list[dict[str, float]]:
    return [asdict(i) for i in items]


@dataclass(frozen=True)
class SuperpositionLab:
    """Everything the superposition lab measured."""

    small: SweepResult
    """5 features into 2 dimensions."""
    medium: SweepResult
    """20 features into 5 dimensions, importance 0.7^i."""
    geometry: GeometryResult
    phases: PhaseDiagram
    steps: int
    seed: int

    def to_json(self) -> dict[str, Any]:
        """``--json`` payload; ``dimensions_per_feature`` is the geometry experiment's D* per sparsity level."""
        g = self.geometry
        return {
            "steps": self.steps,
            "seed": self.seed,
            "dimensions_per_feature": g.dimensions_per_feature,
            "inverse_density": g.inverse_density,
            "sparsity": [1 - 1 / x for x in g.inverse_density],
            "feature_dimensionality_clusters": g.cluster_fractions(),
            "geometry_interference": _interference_list(g.interference),
            "five_in_two": {
                "sparsities": self.small.sparsities,
                "n_represented": self.small.n_represented(),
                "norms": self.small.norms.tolist(),
                "W": self.small.W.tolist(),
                "interference": _interference_list(self.small.interference),
            },
            "twenty_in_five": {
                "sparsities": self.medium.sparsities,
                "n_represented": self.medium.n_represented(),
                "norms": self.medium.norms.tolist(),
                "superposition": self.medium.superposition.tolist(),
                "dimensions_per_feature": self.medium.dimensions_per_feature,
                "interference": _interference_list(self.medium.interference),
            },
            "phase_diagram": {
                "relative_importance": self.phases.relative_importance,
                "density": self.phases.density,
                "phase": self.phases.phase,
            },
            "training_time": {name: t.to_json() for name, t in self.times().items()},
        }

    def times(self) -> dict[str, TrainingTime]:
        """Each experiment's training time (sampling apart) and threads, by the experiment's name."""
        return {
            f"{self.small.n_features}->{self.small.n_hidden}": self.small.time,
            f"{self.medium.n_features}->{self.medium.n_hidden}": self.medium.time,
            f"{self.geometry.n_features}->{self.geometry.n_hidden} geometry": self.geometry.time,
            "2->1 phase diagram": self.phases.time,
        }
