"""Models and transcoders of the attribution-graph tests.

``gpt2_relu``: tests/transcoders' tiny ReLU GPT-2 and its exact transcoders (they reproduce its MLPs), both in
float64, so that identities of the linear replacement model hold to ~1e-12. ``random_transcoders``: seeded
random transcoders (per-layer or cross-layer, optionally with a skip) whose errors are large: the cases where
the error nodes and the skip paths matter.
"""

from __future__ import annotations

import pytest
import torch

import circuitscope as cs
from circuitscope.transcoders.modules import TranscoderConfig, TranscoderKind, TranscoderSet
from tests.transcoders.conftest import exact_transcoders, relu_gpt2


@pytest.fixture(autouse=True)
def _one_thread(one_thread: None) -> None:
    """Every graph test on one torch thread (tests/conftest.py's ``one_thread``)."""


def random_transcoders(
    model: cs.HookedModel, kind: TranscoderKind = "per_layer", *, skip: bool = False, d_sae: int = 24, seed: int = 0
) -> TranscoderSet:
    layers = tuple(range(model.cfg.n_layers))
    d = model.cfg.d_model
    dtype = "float64" if model.W_E.dtype == torch.float64 else "float32"
    cfg = TranscoderConfig(kind, "relu", d, d_sae, d, layers, skip=skip, dtype=dtype, exclude_bos=False)
    tc = TranscoderSet(cfg)
    tc.initialize(torch.Generator().manual_seed(seed))
    with torch.no_grad():
        tc.b_enc.fill_(0.1)  # about half the features active
        tc.b_dec.normal_(generator=torch.Generator().manual_seed(seed + 1))
    return tc


@pytest.fixture(scope="module")
def relu64() -> tuple[cs.HookedModel, TranscoderSet]:
    """The ReLU GPT-2 and its exact transcoders, in float64 (tests must not change them)."""
    model = relu_gpt2()
    tc = exact_transcoders(model)
    model.hf_model.double()
    return model, tc.double()


@pytest.fixture(params=[("per_layer", False), ("cross_layer", True)], ids=["per_layer", "cross_layer_skip"])
def noisy(request: pytest.FixtureRequest, relu64: tuple[cs.HookedModel, TranscoderSet]) -> TranscoderSet:
    """Random transcoders of the ReLU GPT-2: per-layer, and cross-layer with a skip."""
    kind, skip = request.param
    return random_transcoders(relu64[0], kind, skip=skip)


@pytest.fixture
def prompt() -> torch.Tensor:
    return torch.tensor([5, 17, 3, 42, 9, 28, 11])
