"""The native toy transformer: hooks, equivalence with its own forward, options, save/load."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import circuitscope as cs
from circuitscope.toy import ToyConfig, ToyTransformer
from circuitscope.toy.model import build_toy


def _tokens(vocab: int = 50, batch: int = 3, pos: int = 12) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, pos), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"attn_only": True, "layer_norm": False},
        {"positional": "none", "act_fn": "gelu", "bias": True},
    ],
)
def test_hooked_model_matches_forward_and_decomposes(options: dict) -> None:
    model = build_toy(seed=0, d_vocab=50, n_ctx=20, d_model=32, n_layers=2, n_heads=4, initializer_range=0.2, **options)
    tokens = _tokens()
    with torch.no_grad():
        reference = model(tokens).logits
        hooked = cs.HookedModel(model)
        logits, cache = hooked.run_with_cache(tokens)
    # every hook attached: eager attention vs the toy model's own, another summation order (2e-6 on logits ~4.5)
    torch.testing.assert_close(logits, reference, rtol=0, atol=1e-5)
    assert cache["pattern", 1].shape == (3, 4, 12, 12)
    for layer in range(2):
        mid = cache[f"blocks.{layer}.hook_resid_pre"] + cache[f"blocks.{layer}.hook_attn_out"]
        assert torch.equal(mid, cache[f"blocks.{layer}.hook_resid_mid"])
        post = cache[f"blocks.{layer}.hook_resid_mid"] + cache[f"blocks.{layer}.hook_mlp_out"]
        assert torch.equal(post, cache[f"blocks.{layer}.hook_resid_post"])
        heads = cache[f"blocks.{layer}.attn.hook_result"].sum(-2)
        bias = model.get_submodule(f"blocks.{layer}.attn.o").bias
        expected = cache[f"blocks.{layer}.hook_attn_out"]
        # heads summed one by one vs o's single matmul: float32 rounding, 7e-7 on ~3 (default tolerances)
        torch.testing.assert_close(heads + bias if isinstance(bias, torch.Tensor) else heads, expected)
    if options.get("attn_only"):
        assert torch.equal(cache["blocks.0.hook_mlp_out"], torch.zeros_like(cache["blocks.0.hook_mlp_out"]))
    assert ("hook_pos_embed" in hooked.hook_names) == (options.get("positional", "learned") == "learned")


def test_last_only_equals_full_forward_at_the_last_position() -> None:
    model = build_toy(seed=1, d_vocab=30, n_ctx=10, d_model=16, n_layers=3, n_heads=2, d_mlp=24)
    tokens = _tokens(30, 4, 7)
    with torch.no_grad():
        full = model(tokens).logits[:, -1]
        last = model(tokens, last_only=True).logits[:, -1]
    torch.testing.assert_close(last, full, rtol=0, atol=1e-5)  # the last query alone: another GEMM shape (exact here)


def test_hook_edits_change_the_output_and_weight_views_match_the_modules() -> None:
    model = build_toy(seed=2, d_vocab=20, n_ctx=8, d_model=16, n_layers=2, n_heads=2)
    hooked = cs.HookedModel(model)
    tokens = _tokens(20, 2, 8)

    def zero_head(z: torch.Tensor, hook: object) -> torch.Tensor:
        z = z.clone()
        z[:, :, 1] = 0
        return z

    with torch.no_grad():
        clean = hooked(tokens)
        edited = hooked.run_with_hooks(tokens, [("blocks.1.attn.hook_z", zero_head)])
    assert not torch.allclose(clean, edited)  # zeroing a head moves logits by ~0.03, far beyond rounding
    W_Q = hooked.W_Q
    assert W_Q.shape == (2, 2, 16, 8)
    q_weight = model.get_parameter("blocks.1.attn.q.weight")
    torch.testing.assert_close(W_Q[1, 0], q_weight[:8].T, atol=0, rtol=0)  # a view of the same weights
    assert hooked.active_hooks() == []


def test_save_and_load_round_trip(tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    model = build_toy(seed=3, d_vocab=20, n_ctx=8, d_model=16, n_layers=1, n_heads=2)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    tokens = _tokens(20, 2, 8)
    with torch.no_grad():
        assert torch.equal(loaded(tokens).logits, model(tokens).logits)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_layers": 0}, "n_layers"),
        ({"act_fn": "tanh"}, "act_fn"),
        ({"positional": "rotary"}, "positional"),
        ({"d_mlp": 0}, "d_mlp"),
    ],
)
def test_bad_config_is_a_clear_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ToyConfig(**kwargs)


def _same_model(built: ToyTransformer, explicit: ToyTransformer) -> None:
    assert built.config.to_dict() == explicit.config.to_dict()
    expected = explicit.state_dict()
    assert built.state_dict().keys() == expected.keys()
    assert all(torch.equal(value, expected[name]) for name, value in built.state_dict().items())


def test_build_toy_of_takes_the_experiments_fields_by_name() -> None:
    """The labs' models are the ones the explicit build_toy calls make: same config, same seeded weights."""
    from circuitscope.toy.grokking_lab import GrokkingConfig, build_grokking_model
    from circuitscope.toy.induction import InductionConfig, build_induction_model

    sizes: dict[str, Any] = dict(d_vocab=10, n_ctx=16, d_model=16, n_layers=3, n_heads=2, layer_norm=False)
    _same_model(build_induction_model(InductionConfig(**sizes, seed=5)), build_toy(5, attn_only=True, **sizes))
    text = InductionConfig(data="text", d_model=16, n_heads=2, seed=5)
    _same_model(build_induction_model(text), build_toy(5, d_vocab=256, d_model=16, n_heads=2, attn_only=True))
    widths: dict[str, Any] = {"d_model": 16, "n_heads": 2, "d_head": 8, "d_mlp": 32}
    nanda = {"n_ctx": 3, "n_layers": 1, "layer_norm": False, "act_fn": "relu", "init": "fan_in", "bias": False}
    grokking = build_grokking_model(GrokkingConfig(p=7, seed=3, **widths))
    _same_model(grokking, build_toy(3, d_vocab=8, **widths, **nanda))
