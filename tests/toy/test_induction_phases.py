"""The induction lab's logit trajectory (PCA over checkpoints, kinks) and composition measured on activations."""

from __future__ import annotations

import math

import pytest
import torch

import circuitscope as cs
from circuitscope.toy.induction import InductionConfig, build_induction_model, train_induction_model
from circuitscope.toy.induction_composition import activation_composition, head_input_parts
from circuitscope.toy.induction_phases import logit_trajectory


def _embedded(path: torch.Tensor, width: int = 50, seed: int = 0) -> torch.Tensor:
    """A 2-d path [checkpoint 2] placed in a random 2-d plane of a ``width``-dimensional space, plus an offset."""
    basis, _ = torch.linalg.qr(torch.randn(width, 2, generator=torch.Generator().manual_seed(seed)))
    return path @ basis.T + 3.0


def test_a_right_angle_turn_is_the_one_kink() -> None:
    # ten steps of 1 along x, then ten along y: the turn is at checkpoint 10
    path = torch.cat(
        [
            torch.stack([torch.arange(11.0), torch.zeros(11)], 1),
            torch.stack([torch.full((10,), 10.0), torch.arange(1.0, 11.0)], 1),
        ]
    )
    steps = [100 * i for i in range(21)]
    trajectory = logit_trajectory(_embedded(path), steps)
    assert trajectory.kinks == [1000]
    assert trajectory.turning[10] == pytest.approx(90.0, abs=1e-4)
    assert trajectory.turning[0] is None and trajectory.turning[5] == pytest.approx(0.0, abs=1e-4)
    assert sum(trajectory.explained) == pytest.approx(1.0)  # the path spans two dimensions, all of the variance
    # the coordinates keep the distances between checkpoints (PCA is a rotation of the centred points)
    coords = torch.tensor(trajectory.coords, dtype=torch.float64)
    assert torch.allclose(torch.cdist(coords, coords), torch.cdist(path.double(), path.double()), atol=1e-4)


def test_a_straight_path_and_converged_jitter_have_no_kink() -> None:
    line = torch.stack([torch.arange(12.0) ** 0.5, torch.zeros(12)], 1)  # slowing down, never turning
    assert logit_trajectory(_embedded(line), list(range(12))).kinks == []
    jitter = torch.randn(8, 2, generator=torch.Generator().manual_seed(1)) * 1e-3  # tiny random steps at the end
    settled = torch.cat([line, line[-1] + jitter])
    assert logit_trajectory(_embedded(settled), list(range(20))).kinks == []
    with pytest.raises(ValueError, match="one step per snapshot"):
        logit_trajectory(torch.zeros(3, 4), [0, 1])


@pytest.mark.parametrize("layer_norm", [True, False])
def test_activation_composition_adds_up_to_the_heads_actual_inputs(layer_norm: bool) -> None:
    config = InductionConfig(n_layers=3, n_heads=2, d_model=16, n_ctx=16, d_vocab=10, layer_norm=layer_norm)
    model = cs.HookedModel(build_induction_model(config))
    tokens = torch.randint(0, 10, (4, 16), generator=torch.Generator().manual_seed(0))
    _, cache = model.run_with_cache(tokens)
    for layer in range(3):
        for mode in "qkv":
            parts = head_input_parts(model, cache, layer, mode)
            assert parts.labels[-1] == "bias" and len(parts) == 2 + 2 * layer + 2
            assert torch.allclose(parts.total(), cache[f"blocks.{layer}.attn.hook_{mode}"], atol=1e-5)
    shares = activation_composition(model, tokens)
    for mode in "qkv":  # the shares of every head add up to 1; parts a head cannot read are NaN
        grid = getattr(shares, mode)
        assert torch.allclose(torch.nansum(grid, 0), torch.ones(3, 2), atol=1e-5)
        assert math.isnan(shares.share(mode, "L1H0", 1, 0)) and not math.isnan(shares.share(mode, "L1H0", 2, 1))
    assert shares.heads_share("k").shape == (3, 2, 3, 2)


def test_a_silenced_head_writes_nothing_into_later_inputs() -> None:
    config = InductionConfig(n_layers=2, n_heads=2, d_model=16, n_ctx=16, d_vocab=10)
    toy = build_induction_model(config)
    model = cs.HookedModel(toy)
    with torch.no_grad():  # head 1 of layer 0 outputs zero: its columns of the output projection
        toy.get_submodule("blocks.0.attn.o").get_parameter("weight")[:, 8:] = 0.0
    shares = activation_composition(model, torch.randint(0, 10, (4, 16), generator=torch.Generator().manual_seed(0)))
    for mode in "qkv":
        assert shares.share(mode, "L0H1", 1, 0) == 0.0 and shares.share(mode, "L0H1", 1, 1) == 0.0
        assert shares.share(mode, "L0H0", 1, 0) != 0.0


def test_the_trajectory_of_a_resumed_run_is_the_uninterrupted_one(tmp_path) -> None:
    config = InductionConfig(d_model=16, n_heads=2, n_ctx=16, d_vocab=10, steps=4, checkpoint_every=1, batch_size=4)
    whole = train_induction_model(config, tmp_path / "whole", measure_ablation=False, threads=1)
    train_induction_model(
        InductionConfig(**{**config.__dict__, "steps": 2}), tmp_path / "cut", measure_ablation=False, threads=1
    )
    resumed = train_induction_model(config, tmp_path / "cut", measure_ablation=False, threads=1)
    assert whole.logit_trajectory is not None and resumed.logit_trajectory is not None
    assert whole.logit_trajectory.steps == [0, 1, 2, 3, 4]
    assert torch.allclose(
        torch.tensor(whole.logit_trajectory.coords), torch.tensor(resumed.logit_trajectory.coords), atol=1e-6
    )
    assert whole.to_dict()["activation_composition"]["labels"][-1] == "bias"
