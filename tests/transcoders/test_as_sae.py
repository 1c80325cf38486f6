"""A transcoder layer read as an SAE encodes as the layer does and decodes to the sum of its feature's writes."""

from __future__ import annotations

import pytest
import torch

import circuitscope as cs
from circuitscope.transcoders import TranscoderConfig, TranscoderSet
from circuitscope.transcoders.as_sae import layer_as_sae
from circuitscope.transcoders.modules import TranscoderArchitecture, TranscoderKind


def _random(model: cs.HookedModel, kind: TranscoderKind, architecture: TranscoderArchitecture) -> TranscoderSet:
    d = model.cfg.d_model
    k = 5 if architecture == "topk" else None
    cfg = TranscoderConfig(kind, architecture, d, 24, d, tuple(range(model.cfg.n_layers)), k=k)
    tc = TranscoderSet(cfg)
    tc.initialize(torch.Generator().manual_seed(0), threshold=0.05)
    with torch.no_grad():
        tc.b_enc.fill_(0.1)
        for dec in tc.W_dec:
            dec.normal_(generator=torch.Generator().manual_seed(1))
    return tc


@pytest.mark.parametrize("architecture", ["relu", "topk", "jumprelu"])
@pytest.mark.parametrize("kind", ["per_layer", "cross_layer"])
def test_the_sae_encodes_as_the_layer_and_decodes_its_writes(
    relu_model: cs.HookedModel, kind: TranscoderKind, architecture: TranscoderArchitecture
) -> None:
    tc = _random(relu_model, kind, architecture)
    x = torch.randn(3, 7, relu_model.cfg.d_model, generator=torch.Generator().manual_seed(2))
    for layer in tc.layers:
        sae = layer_as_sae(tc, layer)
        assert sae.cfg.hook_name == tc.input_hook(layer) and sae.cfg.architecture == architecture
        acts = sae.encode(x)
        assert torch.equal(acts, tc.encode(layer, x)) and bool((acts > 0).any())
        # the decoder row of a feature is what it writes to every MLP output it reaches, summed
        writes = sum(dec[4] for _, dec in tc.decoders(layer))
        assert isinstance(writes, torch.Tensor)
        torch.testing.assert_close(sae.W_dec[4], writes)
    assert len(tc.decoders(0)) == (1 if kind == "per_layer" else relu_model.cfg.n_layers)
