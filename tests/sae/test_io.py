"""SAELens folder format, both ways; clear errors for damaged folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from circuitscope import sae as S  # noqa: N812


def _random(arch: str, d_in: int = 8, d_sae: int = 16) -> S.SAE:
    sae = S.create_sae(
        S.SAEConfig(
            architecture=arch,
            d_in=d_in,
            d_sae=d_sae,
            k=4 if "topk" in arch else None,
            hook_name="blocks.0.hook_resid_post",
        )
    )
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.rand(p.shape, generator=gen) * 0.2)
    if arch == "batchtopk":
        sae.threshold.fill_(0.05)  # type: ignore[union-attr]  # only the BatchTopK SAE has a threshold buffer
    return sae


@pytest.mark.parametrize("arch", ["relu", "topk", "jumprelu", "batchtopk"])
def test_save_load_round_trip_is_exact(arch: str, tmp_path: Path) -> None:
    sae = _random(arch)
    S.save_sae(sae, tmp_path)
    loaded = S.load_sae(tmp_path)
    for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
        assert torch.equal(getattr(loaded, name), getattr(sae, name))
    x = torch.randn(20, 8)
    assert torch.equal(loaded(x), sae(x))
    assert loaded.cfg.hook_name == "blocks.0.hook_resid_post"
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    assert cfg["architecture"] == {"relu": "standard", "topk": "topk"}.get(arch, "jumprelu")
    assert cfg["metadata"]["hook_name"] == "blocks.0.hook_resid_post"
    # a second save of the loaded SAE writes the same weights
    S.save_sae(loaded, tmp_path / "again")
    assert (tmp_path / "again" / "sae_weights.safetensors").read_bytes() == (
        tmp_path / "sae_weights.safetensors"
    ).read_bytes()


def test_a_hand_written_saelens_6_jumprelu_folder(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(1)
    W_enc, W_dec = torch.randn(6, 10, generator=gen), torch.randn(10, 6, generator=gen)
    b_enc, b_dec, threshold = (
        torch.randn(10, generator=gen),
        torch.randn(6, generator=gen),
        torch.rand(10, generator=gen),
    )
    save_file({"W_enc": W_enc, "W_dec": W_dec, "b_enc": b_enc, "b_dec": b_dec, "threshold": threshold},
              str(tmp_path / "sae_weights.safetensors"))  # fmt: skip
    cfg = {
        "d_in": 6, "d_sae": 10, "dtype": "float32", "device": "cpu", "apply_b_dec_to_input": True,
        "normalize_activations": "none", "reshape_activations": "none", "architecture": "jumprelu",
        "metadata": {"model_name": "gemma-2-2b", "hook_name": "blocks.12.hook_resid_post", "context_size": 1024,
                     "prepend_bos": True, "sae_lens_version": "6.5.0"},
    }  # fmt: skip
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    sae = S.load_sae(tmp_path)
    assert isinstance(sae, S.JumpReLUSAE)
    assert (sae.cfg.hook_name, sae.cfg.model_name, sae.cfg.context_size) == (
        "blocks.12.hook_resid_post",
        "gemma-2-2b",
        1024,
    )
    x = torch.randn(5, 6)
    pre = (x - b_dec) @ W_enc + b_enc
    acts = pre * (pre > threshold)
    # the formula by hand vs the module's (which may fuse the bias into the matmul): float32 rounding
    torch.testing.assert_close(sae.encode(x), acts)
    torch.testing.assert_close(sae(x), acts @ W_dec + b_dec)


def test_a_hand_written_saelens_5_topk_folder(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(2)
    W_enc, W_dec = torch.randn(4, 12, generator=gen), torch.randn(12, 4, generator=gen)
    b_enc, b_dec = torch.randn(12, generator=gen), torch.randn(4, generator=gen)
    save_file(
        {"W_enc": W_enc, "W_dec": W_dec, "b_enc": b_enc, "b_dec": b_dec}, str(tmp_path / "sae_weights.safetensors")
    )
    cfg = {
        "architecture": "standard", "d_in": 4, "d_sae": 12, "activation_fn_str": "topk",
        "activation_fn_kwargs": {"k": 3}, "apply_b_dec_to_input": False, "model_name": "gpt2",
        "hook_name": "blocks.8.hook_resid_pre", "hook_layer": 8, "context_size": 128, "dtype": "float32",
    }  # fmt: skip
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    sae = S.load_sae(tmp_path)
    assert isinstance(sae, S.TopKSAE) and sae.cfg.k == 3 and sae.cfg.hook_name == "blocks.8.hook_resid_pre"
    x = torch.randn(7, 4)
    pre = x @ W_enc + b_enc
    vals, idx = pre.topk(3, dim=-1)
    expected = torch.zeros_like(pre).scatter(-1, idx, vals.relu())
    torch.testing.assert_close(sae.encode(x), expected)  # by hand vs the module: float32 rounding


def test_saelens_topk_rescaled_by_decoder_norm_is_folded(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(3)
    W_enc, W_dec = torch.randn(4, 12, generator=gen), torch.randn(12, 4, generator=gen) * 3
    b_enc, b_dec = torch.randn(12, generator=gen), torch.randn(4, generator=gen)
    save_file(
        {"W_enc": W_enc, "W_dec": W_dec, "b_enc": b_enc, "b_dec": b_dec}, str(tmp_path / "sae_weights.safetensors")
    )
    cfg = {"architecture": "topk", "d_in": 4, "d_sae": 12, "k": 2, "rescale_acts_by_decoder_norm": True,
           "metadata": {"hook_name": "blocks.0.hook_resid_post", "sae_lens_version": "6.54.0"}}  # fmt: skip
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    sae = S.load_sae(tmp_path)
    x = torch.randn(9, 4)
    norms = W_dec.norm(dim=-1)
    pre = ((x - b_dec) @ W_enc + b_enc) * norms
    vals, idx = pre.topk(2, dim=-1)
    acts = torch.zeros_like(pre).scatter(-1, idx, vals.relu())
    # the input norm folded in vs applied by hand: float32 rounding (measured 1.9e-6 on ~33)
    torch.testing.assert_close(sae(x), (acts / norms) @ W_dec + b_dec, atol=1e-5, rtol=1e-5)


def test_damaged_folders_are_clear_errors(tmp_path: Path) -> None:
    S.save_sae(_random("relu"), tmp_path / "ok")
    with pytest.raises(S.SAEFormatError, match=r"no sae_weights\.safetensors"):
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "cfg.json").write_text("{}")
        S.load_sae(tmp_path / "empty")
    weights = tmp_path / "ok" / "sae_weights.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])
    with pytest.raises(S.SAEFormatError, match="damaged"):
        S.load_sae(tmp_path / "ok")
    weights.write_bytes(good)
    cfg = json.loads((tmp_path / "ok" / "cfg.json").read_text())
    (tmp_path / "ok" / "cfg.json").write_text(json.dumps({**cfg, "architecture": "gated"}))
    with pytest.raises(S.SAEFormatError, match="'gated' is not supported"):
        S.load_sae(tmp_path / "ok")
    (tmp_path / "ok" / "cfg.json").write_text(json.dumps({**cfg, "d_sae": 17}))
    with pytest.raises(S.SAEFormatError, match="shape"):
        S.load_sae(tmp_path / "ok")
    (tmp_path / "ok" / "cfg.json").write_text(json.dumps({**cfg, "normalize_activations": "layer_norm"}))
    with pytest.raises(S.SAEFormatError, match="layer_norm"):
        S.load_sae(tmp_path / "ok")
