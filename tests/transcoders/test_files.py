"""Transcoder files: circuitscope's versioned folders, circuit-tracer's layouts both ways, Gemma Scope's params.npz."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import circuitscope as cs
from circuitscope.transcoders import (
    TranscoderConfig,
    TranscoderConfigError,
    TranscoderFormatError,
    TranscoderModelError,
    TranscoderSet,
)
from circuitscope.transcoders.formats import load_circuit_tracer, load_gemma_scope, save_circuit_tracer
from circuitscope.transcoders.io import CONFIG_FILENAME, load_transcoders, save_transcoders
from tests.transcoders.conftest import exact_transcoders, relu_gpt2


def _random_set(cfg: TranscoderConfig, seed: int = 0) -> TranscoderSet:
    tc = TranscoderSet(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in tc.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
        if tc.threshold is not None:
            tc.threshold.abs_()
    return tc


def _same(a: TranscoderSet, b: TranscoderSet) -> None:
    assert a.cfg.kind == b.cfg.kind and a.cfg.architecture == b.cfg.architecture and a.layers == b.layers
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


@pytest.mark.parametrize(
    "cfg",
    [
        TranscoderConfig("per_layer", "topk", 6, 10, 6, (0, 2), skip=True, k=3, model_fingerprint="fp"),
        TranscoderConfig("cross_layer", "jumprelu", 6, 10, 6, (0, 1, 2)),
    ],
)
def test_circuitscope_folder_round_trips(cfg: TranscoderConfig, tmp_path: Path) -> None:
    tc = _random_set(cfg)
    save_transcoders(tc, tmp_path, metadata={"note": "x"})
    back = load_transcoders(tmp_path)
    assert back.cfg == tc.cfg
    _same(back, tc)


def test_folder_refuses_newer_version_damage_and_other_models(relu_model: cs.HookedModel, tmp_path: Path) -> None:
    tc = exact_transcoders(relu_model)
    save_transcoders(tc, tmp_path)
    load_transcoders(tmp_path, model=relu_model)
    other = relu_gpt2()
    with torch.no_grad():
        other.W_E.mul_(2)
    with pytest.raises(TranscoderModelError, match="another model"):
        load_transcoders(tmp_path, model=other)
    raw = json.loads((tmp_path / CONFIG_FILENAME).read_text())
    (tmp_path / CONFIG_FILENAME).write_text(json.dumps({**raw, "format_version": 99}))
    with pytest.raises(TranscoderFormatError, match="newer than this circuitscope reads"):
        load_transcoders(tmp_path)
    (tmp_path / CONFIG_FILENAME).write_text(json.dumps({**raw, "config": {**raw["config"], "d_sae": 5}}))
    with pytest.raises(TranscoderFormatError, match="has shape"):
        load_transcoders(tmp_path)
    with pytest.raises(TranscoderFormatError, match=r"has no transcoders\.json"):
        load_transcoders(tmp_path / "nowhere")


def test_circuit_tracer_per_layer_round_trip(relu_model: cs.HookedModel, tmp_path: Path) -> None:
    tc = exact_transcoders(relu_model)
    config = save_circuit_tracer(tc, tmp_path)
    text = config.read_text()
    assert 'feature_input_hook: "ln2.hook_normalized"' in text and 'feature_output_hook: "hook_mlp_out"' in text

    layer1 = load_file(str(tmp_path / "layer_1.safetensors"))
    assert torch.equal(layer1["W_enc"], tc.W_enc[1].detach().T)  # [d_sae, d_model]
    assert torch.equal(layer1["W_dec"], tc.W_dec[1][0].detach().T)  # [d_model, d_sae]
    assert torch.equal(layer1["W_skip"], torch.zeros(32, 32))
    back = load_circuit_tracer(config, model=relu_model)
    assert back.cfg.skip is False
    _same(back, tc)


def test_circuit_tracer_clt_round_trip(tmp_path: Path) -> None:
    cfg = TranscoderConfig("cross_layer", "jumprelu", 6, 10, 6, (0, 1, 2), input_site="hook_resid_mid")
    tc = _random_set(cfg)
    save_circuit_tracer(tc, tmp_path)
    dec0 = load_file(str(tmp_path / "W_dec_0.safetensors"))["W_dec_0"]
    assert dec0.shape == (10, 3, 6) and torch.equal(dec0[:, 2], tc.W_dec[0][2].detach())
    back = load_circuit_tracer(tmp_path)
    assert back.cfg.input_site == "hook_resid_mid"
    _same(back, tc)


def test_circuit_tracer_refuses_what_it_cannot_hold(tmp_path: Path) -> None:
    topk = _random_set(TranscoderConfig("per_layer", "topk", 6, 10, 6, (0, 1), k=2))
    with pytest.raises(TranscoderConfigError, match="per-layer ReLU"):
        save_circuit_tracer(topk, tmp_path)
    gap = _random_set(TranscoderConfig("per_layer", "relu", 6, 10, 6, (1, 2)))
    with pytest.raises(TranscoderConfigError, match="every layer from 0"):
        save_circuit_tracer(gap, tmp_path)
    (tmp_path / "config.yaml").write_text(
        'model_name: "m"\nfeature_input_hook: "ln2.hook_normalized"\nfeature_output_hook: "hook_mlp_out"\n'
        'transcoders:\n  - id: "a"\n    layer: 0\n    filepath: "hf://google/x/params.npz"\n'
    )
    with pytest.raises(TranscoderFormatError, match="download it first"):
        load_circuit_tracer(tmp_path)


def test_gemma_scope_npz_reader(tmp_path: Path) -> None:
    g = np.random.default_rng(0)
    files = {}
    arrays = {}
    for layer in (0, 1):
        arrays[layer] = {
            "W_enc": g.standard_normal((6, 10)).astype(np.float32),
            "W_dec": g.standard_normal((10, 6)).astype(np.float32),
            "b_enc": g.standard_normal(10).astype(np.float32),
            "b_dec": g.standard_normal(6).astype(np.float32),
            "threshold": np.abs(g.standard_normal(10)).astype(np.float32),
        }
        path = tmp_path / f"layer_{layer}" / "params.npz"
        path.parent.mkdir()
        np.savez(path, **arrays[layer])
        files[layer] = path
    tc = load_gemma_scope(files)
    assert tc.cfg.architecture == "jumprelu" and tc.cfg.kind == "per_layer" and tc.layers == (0, 1)
    x = torch.from_numpy(g.standard_normal((4, 6)).astype(np.float32))
    a = arrays[1]
    pre = x.numpy() @ a["W_enc"] + a["b_enc"]
    acts = pre * (pre > a["threshold"])
    ref = acts @ a["W_dec"] + a["b_dec"]  # Gemma Scope's JumpReLU transcoder, by hand
    np.testing.assert_allclose(tc.reconstruct({1: x})[1].detach().numpy(), ref, rtol=1e-5, atol=1e-5)
    np.savez(tmp_path / "bad.npz", W_enc=arrays[0]["W_enc"])
    with pytest.raises(TranscoderFormatError, match="has no tensor"):
        load_gemma_scope({0: tmp_path / "bad.npz"})
