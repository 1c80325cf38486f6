"""Superposition: the 5-into-2 sweep at the two extremes, D* and D_i by their definitions, bad input."""

from __future__ import annotations

import pytest
import torch

from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.superposition import (
    TrainingOptions,
    dimensions_per_feature,
    feature_dimensionality,
    interference,
)
from circuitscope.toy.superposition_lab import sparsity_sweep


@pytest.mark.slow
def test_dense_keeps_the_two_most_important_and_sparse_packs_more() -> None:
    # quick settings (lr 1e-2, batch 256, 800 steps) reach the paper's two regimes
    quick = TrainingOptions(steps=800, batch_size=256, lr=1e-2, seed=0)
    result = sparsity_sweep(5, 2, 0.9, (0.0, 0.99), training=quick)
    dense = result.norms[0]
    assert result.n_represented()[0] == 2
    assert set(dense.topk(2).indices.tolist()) == {0, 1}  # the two most important
    W = result.W[0][:, :2]
    cos = float((W[:, 0] @ W[:, 1]) / (W[:, 0].norm() * W[:, 1].norm()))
    assert abs(cos) < 0.1  # orthogonal
    assert result.n_represented()[1] > 2  # superposition: more features than dimensions
    # the same function on the same W, stored through .tolist(): float32 -> float -> float32 is exact
    torch.testing.assert_close(
        torch.tensor(result.dimensions_per_feature), dimensions_per_feature(result.W), atol=0, rtol=0
    )


def test_dimensions_per_feature_by_definition() -> None:
    # a pentagon of unit vectors in 2-D: ||W||_F^2 = 5, D* = 2/5; each D_i = 1 / sum_j cos^2 = 2/5
    angles = torch.arange(5) * 2 * torch.pi / 5
    W = torch.stack([angles.cos(), angles.sin()])
    assert float(dimensions_per_feature(W)) == pytest.approx(2 / 5)
    # cos / sin of float32 angles: each squared cosine off by ~1e-7, summed over 5 features
    torch.testing.assert_close(feature_dimensionality(W), torch.full((5,), 2 / 5), rtol=1e-5, atol=1e-6)
    # an antipodal pair plus an orthogonal feature: D = 1/2, 1/2, 1; a dropped feature: 0
    W = torch.tensor([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    torch.testing.assert_close(feature_dimensionality(W), torch.tensor([0.5, 0.5, 1.0, 0.0]), atol=0, rtol=0)  # exact
    assert float(dimensions_per_feature(W)) == pytest.approx(2 / 3)
    inter = interference(W)
    assert inter.n_represented == 3 and inter.max_abs_cos == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_features": 2, "n_hidden": 5}, "smaller than n_features"),
        ({"sparsities": (1.0,)}, "sparsities"),
    ],
)
def test_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(LabConfigError, match=message):
        sparsity_sweep(training=TrainingOptions(steps=1), **kwargs)
