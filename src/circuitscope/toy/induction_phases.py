"""Phase changes from the logits' trajectory: PCA over checkpoints of the logits on fixed random tokens.

Olsson et al. (2022) stack each checkpoint's (log-softmaxed) logits on the same fixed inputs into one
vector per checkpoint and project the checkpoints on their top principal components: training moves
along a smooth path that turns sharply where the model changes what it computes (the induction
bump). :func:`logit_trajectory` does that PCA and finds the turns: at each inner checkpoint the
angle between the step that arrives and the step that leaves, in the top components; a *kink* is a
checkpoint whose two steps both move at least ``min_move`` of the longest step, whose angle is at least
``min_angle`` degrees and at least that of each neighbour whose steps move as much (so the jitter of a converged run,
tiny steps in random directions, is not a kink).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from jaxtyping import Float

__all__ = ["LogitTrajectory", "logit_trajectory", "trajectory_probe"]


@dataclass(frozen=True)
class LogitTrajectory:
    """The checkpoints in the top principal components of their logits, and the kinks of the path."""

    steps: list[int]
    """Checkpoint steps."""
    coords: list[list[float]]
    """[checkpoint][component]: each checkpoint's coordinates on the top components (centred over checkpoints)."""
    explained: list[float]
    """Fraction of the variance over checkpoints on each of those components."""
    turning: list[float | None]
    """Angle (degrees) between the arriving and the leaving step at each checkpoint (None at both ends)."""
    kinks: list[int]
    """Steps of the kinks (see the module docstring)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def trajectory_probe(d_vocab: int, n_ctx: int, n_sequences: int = 8, seed: int = 4242) -> torch.Tensor:
    """The fixed random tokens [n_sequences n_ctx] whose logits every checkpoint is measured on."""
    return torch.randint(0, d_vocab, (n_sequences, n_ctx), generator=torch.Generator().manual_seed(seed))


def _angle(a: torch.Tensor, b: torch.Tensor) -> float:
    cosine = float(torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-30))
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))


def logit_trajectory(
    snapshots: Float[torch.Tensor, "checkpoint ..."],
    steps: list[int],
    n_components: int = 3,
    min_angle: float = 45.0,
    min_move: float = 0.25,
) -> LogitTrajectory:
    """PCA over checkpoints of ``snapshots`` (one tensor of logits per checkpoint, any shape) and its kinks."""
    if snapshots.shape[0] != len(steps):
        raise ValueError(f"{snapshots.shape[0]} snapshots but {len(steps)} steps; give one step per snapshot")
    x = snapshots.flatten(1).double()
    x = x - x.mean(0)
    u, s, _ = torch.linalg.svd(x, full_matrices=False)
    k = min(n_components, s.numel())
    coords = u[:, :k] * s[:k]
    total = float(s.pow(2).sum())
    explained = (s[:k].pow(2) / total).tolist() if total > 0 else [0.0] * k
    moves = coords[1:] - coords[:-1]
    lengths = moves.norm(dim=1)
    longest = float(lengths.max()) if lengths.numel() else 0.0
    turning: list[float | None] = [None] * len(steps)
    moving: list[float | None] = [None] * len(steps)  # the angles of the checkpoints whose two steps move
    for t in range(1, len(steps) - 1):
        turning[t] = _angle(moves[t - 1], moves[t])
        if min(float(lengths[t - 1]), float(lengths[t])) >= min_move * longest > 0:
            moving[t] = turning[t]
    kinks = []
    for t in range(1, len(steps) - 1):
        angle = moving[t]
        neighbours = [a for a in (moving[t - 1], moving[t + 1]) if a is not None]
        if angle is not None and angle >= min_angle and all(angle >= a for a in neighbours):
            kinks.append(steps[t])
    return LogitTrajectory(steps=list(steps), coords=coords.tolist(), explained=explained, turning=turning, kinks=kinks)
