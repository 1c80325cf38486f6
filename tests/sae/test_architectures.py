"""Each architecture recovers the known sparse directions its data is made of."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from circuitscope import sae as S  # noqa: N812
from circuitscope.sae.base import StepContext
from tests.sae.conftest import recovered_fraction, synthetic

CASES: dict[str, dict[str, Any]] = {
    "relu": {"sparsity_coefficient": 1.0},
    "topk": {"k": 4},
    "batchtopk": {"k": 4},
    "jumprelu": {"sparsity_coefficient": 2.0, "bandwidth": 0.2, "jumprelu_threshold_init": 0.3},
}


@pytest.fixture(scope="module")
def synthetic_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[S.ActivationStore, torch.Tensor]:
    syn = synthetic()
    store = S.write_store(syn.data, tmp_path_factory.mktemp("synthetic"), tokens_per_shard=8192)
    return store, syn.directions


def test_every_architecture_is_registered() -> None:
    assert S.architecture_names() == ["batchtopk", "jumprelu", "relu", "topk"]


@pytest.mark.parametrize("arch", sorted(CASES))
def test_recovers_known_directions(arch: str, synthetic_store: tuple[S.ActivationStore, torch.Tensor]) -> None:
    store, directions = synthetic_store
    torch.set_num_threads(1)
    cfg = S.TrainConfig(
        architecture=arch,
        d_sae=64,
        tokens=300_000,
        batch_size=512,
        lr=3e-3,
        warmup_steps=20,
        sparsity_warmup_steps=50,
        log_every=50,
        **CASES[arch],
    )
    result = S.train_sae(store, cfg, progress_bar=False)
    assert recovered_fraction(directions, result.sae.W_dec.detach()) >= 0.85
    final = result.history[-1]
    assert final["explained_variance"] > 0.85
    assert final["l0"] < 8  # each sample uses 32 * 0.08 = 2.6 directions on average


def test_topk_keeps_exactly_k_and_sparse_decode_matches_dense() -> None:
    cfg = S.SAEConfig(architecture="topk", d_in=8, d_sae=32, k=3)
    sae = S.create_sae(cfg)
    sae.initialize(torch.Generator().manual_seed(0))
    x = torch.randn(16, 8)
    acts = sae.encode(x)
    assert bool(((acts > 0).sum(-1) <= 3).all())
    out = sae.training_forward(x, StepContext())
    torch.testing.assert_close(out.recon, sae.decode(acts), atol=1e-5, rtol=0)  # training path: 2.4e-7 on ~4


def test_jumprelu_threshold_gets_a_straight_through_gradient() -> None:
    sae = S.JumpReLUSAE(S.SAEConfig(architecture="jumprelu", d_in=4, d_sae=6))
    sae.initialize(torch.Generator().manual_seed(0))
    with torch.no_grad():
        sae.threshold.fill_(0.05)
    x = torch.randn(64, 4)
    out = sae.training_forward(x, StepContext(sparsity_coefficient=1.0, options={"bandwidth": 0.5}))
    out.loss.backward()
    grad = sae.threshold.grad
    assert grad is not None and bool(grad.abs().sum() > 0)


def test_fold_activation_scale_reads_raw_inputs() -> None:
    for arch in ("relu", "topk", "jumprelu"):
        sae = S.create_sae(S.SAEConfig(architecture=arch, d_in=6, d_sae=12, k=3 if arch == "topk" else None))
        sae.initialize(torch.Generator().manual_seed(1), b_dec=torch.randn(6))
        x = torch.randn(10, 6) * 7
        scaled = sae(x * 0.25) / 0.25
        sae.fold_activation_scale(0.25)
        torch.testing.assert_close(sae(x), scaled, atol=0, rtol=0)  # 0.25 is a power of two: every scaling is exact


def test_unknown_architecture_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(S.UnknownArchitectureError, match="registered: batchtopk, jumprelu, relu, topk"):
        S.TrainConfig(architecture="gated")
    with pytest.raises(S.UnknownArchitectureError):
        S.create_sae(S.SAEConfig(architecture="matryoshka", d_in=4, d_sae=8))


def test_geometric_median_resists_outliers() -> None:
    points = torch.cat([torch.zeros(50, 3), torch.full((5, 3), 1000.0)])
    assert float(S.geometric_median(points).norm()) < 1.0
    assert float(points.mean(0).norm()) > 100
