"""The HookedModel API: names, scoped hooks, caching, early stopping, errors."""

from __future__ import annotations

import pytest
import torch

from circuitscope import HookedModel, HookError, HookNameError, ShapeError, TokenizationError, act_name
from circuitscope.core.hook_points import HookPoint
from tests.tiny_models import VOCAB, TinyModels


@pytest.fixture(scope="module")
def model(tiny: TinyModels) -> HookedModel:
    return tiny.hooked("llama_gqa")


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return torch.randint(1, VOCAB, (3, 9), generator=torch.Generator().manual_seed(3))


def test_hook_names_are_transformerlens_names(model: HookedModel) -> None:
    names = model.hook_names
    assert names[0] == "hook_embed" and names[-1] == "ln_final.hook_normalized"
    for short in ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "q", "k", "v", "z", "pattern"):
        for layer in range(model.cfg.n_layers):
            assert act_name(short, layer) in names
    assert "blocks.0.attn.hook_rot_q" in names and "blocks.1.mlp.hook_pre_linear" in names


def test_unknown_hook_name_suggests_the_closest(model: HookedModel, tokens: torch.Tensor) -> None:
    with pytest.raises(HookNameError, match=r"blocks\.1\.hook_resid_post"):
        model.run_with_cache(tokens, names=["blocks.1.hook_resid_pots"])
    with pytest.raises(HookNameError, match="closest valid names"):
        model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_patern", lambda x, hook: None)])
    with pytest.raises(HookNameError, match="matches no hook"):
        model.run_with_cache(tokens, names="blocks.*.hook_nothing")
    assert model.active_hooks() == []


def test_name_filters(model: HookedModel, tokens: torch.Tensor) -> None:
    _, by_glob = model.run_with_cache(tokens, names="blocks.*.hook_resid_post")
    assert list(by_glob) == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    _, by_fn = model.run_with_cache(tokens, names=lambda n: n.endswith("hook_z"))
    assert list(by_fn) == ["blocks.0.attn.hook_z", "blocks.1.attn.hook_z"]
    _, by_list = model.run_with_cache(tokens, names=["hook_embed", "blocks.1.attn.hook_pattern"])
    assert set(by_list) == {"hook_embed", "blocks.1.attn.hook_pattern"}
    assert torch.equal(by_glob["resid_post", 1], by_glob["blocks.1.hook_resid_post"])
    assert torch.equal(by_glob["resid_post", -1], by_glob["blocks.1.hook_resid_post"])
    with pytest.raises(HookNameError, match="was not cached"):
        by_glob["resid_pre", 0]


@torch.no_grad()
def test_stop_early_skips_the_rest_of_the_model(model: HookedModel, tokens: torch.Tensor) -> None:
    calls: list[str] = []
    handle = model.add_hook("ln_final.hook_normalized", lambda x, hook: calls.append(hook.name))
    try:
        logits, cache = model.run_with_cache(tokens, names=["blocks.0.hook_resid_post"], stop_early=True)
        assert logits is None and calls == []
        full_logits, full = model.run_with_cache(tokens, names=["blocks.0.hook_resid_post"])
        assert calls == ["ln_final.hook_normalized"]
        assert torch.equal(cache["resid_post", 0], full["resid_post", 0])
        assert full_logits.shape == (*tokens.shape, VOCAB)
        only = model.cache_activations(tokens, "blocks.1.attn.hook_q")
        assert list(only) == ["blocks.1.attn.hook_q"] and calls == ["ln_final.hook_normalized"]
    finally:
        handle.remove()
    assert model.active_hooks() == []


@torch.no_grad()
def test_hooks_compose_in_order_and_nest(model: HookedModel, tokens: torch.Tensor) -> None:
    name = "blocks.0.hook_mlp_out"
    _, clean = model.run_with_cache(tokens, names=name)
    with model.hooks([(name, lambda x, hook: x * 2)]):
        with model.hooks([(name, lambda x, hook: x + 1)]):
            _, cache = model.run_with_cache(tokens, names=name)
            torch.testing.assert_close(cache[name], clean[name] * 2 + 1, atol=0, rtol=0)  # the same two float ops
        _, cache = model.run_with_cache(tokens, names=name)
        torch.testing.assert_close(cache[name], clean[name] * 2, atol=0, rtol=0)
    assert model.active_hooks() == []


def test_a_replacement_of_the_wrong_shape_is_refused(model: HookedModel, tokens: torch.Tensor) -> None:
    with pytest.raises(ShapeError, match="same shape"):
        model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_resid_pre", lambda x, hook: x[:, :1])])
    assert model.active_hooks() == []


@torch.no_grad()
def test_patching_a_head_matches_editing_z(model: HookedModel, tokens: torch.Tensor) -> None:
    """Zeroing head 2 through hook_result equals zeroing it through hook_z (for a plain o_proj)."""

    def zero_result(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        x = x.clone()
        x[:, :, 2] = 0
        return x

    a = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.attn.hook_result", zero_result)])
    b = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.attn.hook_z", zero_result)])
    # per-head einsum then a sum over heads vs o_proj's one matmul: float32 rounding, measured 2.4e-7 on logits ~1
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_bad_tokens_get_clear_errors(model: HookedModel) -> None:
    with pytest.raises(TokenizationError, match="context"):
        model(torch.zeros(1, model.cfg.n_ctx + 1, dtype=torch.long))
    with pytest.raises(ShapeError, match="token ids"):
        model(torch.full((1, 3), VOCAB + 5, dtype=torch.long))
    with pytest.raises(ShapeError, match="integer tensor"):
        model(torch.zeros(1, 3))
    with pytest.raises(ShapeError, match="out of range"):
        model.check_layer_head(5)
    with pytest.raises(ShapeError, match="out of range"):
        model.check_layer_head(0, head=4)
    with pytest.raises(TokenizationError, match="no tokenizer"):
        model.to_tokens("hello")


@torch.no_grad()
def test_cache_helpers(model: HookedModel, tokens: torch.Tensor) -> None:
    _, cache = model.run_with_cache(tokens)
    assert torch.equal(cache.tokens, tokens)
    stacked = cache.stack("resid_post")
    assert stacked.shape == (model.cfg.n_layers, *tokens.shape, model.cfg.d_model)
    acc = cache.accumulated_resid()
    assert acc.labels == ["0_pre", "1_pre", "final_post"]
    torch.testing.assert_close(acc.tensor[-1], cache["resid_post", -1], atol=0, rtol=0)  # the cached tensor itself
    heads = cache.stack_head_results()
    assert heads.labels[:2] == ["L0H0", "L0H1"] and len(heads) == model.cfg.n_layers * model.cfg.n_heads
    # frozen-scale final norm is linear: normed components sum to the normed stream (RMSNorm: no bias)
    normed = cache.apply_ln_to_stack(cache.decompose_resid())
    # each component normed, then summed, vs the norm of the sum: float32 rounding, measured 4.8e-7 on ~3
    torch.testing.assert_close(normed.total(), cache["ln_final.hook_normalized"], atol=1e-5, rtol=1e-5)
    lens = cache.accumulated_resid(apply_ln=True)
    # the frozen-scale norm recomputed outside the model's RMSNorm module: float32 rounding of values ~3
    torch.testing.assert_close(lens.tensor[-1], cache["ln_final.hook_normalized"], atol=1e-5, rtol=1e-5)
    with pytest.raises(ShapeError, match="out of range"):
        cache.decompose_resid(layer=7)
    with pytest.raises(ShapeError):
        cache.stack_head_results(layer=9)


@torch.no_grad()
def test_layernorm_stack_sums_to_normed_stream_minus_bias(tiny: TinyModels) -> None:
    model = tiny.hooked("gpt2")
    tokens = torch.randint(0, VOCAB, (2, 6), generator=torch.Generator().manual_seed(0))
    _, cache = model.run_with_cache(tokens)
    stack = cache.decompose_resid()
    assert stack.labels[:2] == ["embed", "pos_embed"]
    normed = cache.apply_ln_to_stack(stack)
    final_norm = model.wiring.final_norm
    assert isinstance(final_norm, torch.nn.LayerNorm) and final_norm.bias is not None
    torch.testing.assert_close(  # normed components summed vs the norm of the sum: float32 rounding of ~3
        normed.total() + final_norm.bias, cache["ln_final.hook_normalized"], atol=1e-5, rtol=1e-5
    )


def test_a_deep_copy_is_an_independent_model(tiny: TinyModels, tokens: torch.Tensor) -> None:
    import copy

    original = tiny.hooked("llama_gqa")
    original.hf_model.model.layers[0].train()  # one submodule in train mode: the copy keeps every module's mode
    clone = copy.deepcopy(original)
    assert clone.hf_model.model.layers[0].training and not clone.hf_model.model.layers[1].training
    original.hf_model.eval()
    clone.hf_model.eval()
    baseline = original(tokens)
    assert torch.equal(clone(tokens), baseline)
    fired: list[str] = []
    zero = lambda x, hook: (fired.append(hook.name), torch.zeros_like(x))[1]  # noqa: E731
    with clone.hooks([("blocks.0.hook_resid_post", zero)]):
        changed = clone(tokens)
        plain = original(tokens)  # the copy's hook must not fire on the original
    assert fired == ["blocks.0.hook_resid_post"]
    assert torch.equal(plain, baseline) and not torch.equal(changed, plain)
    with torch.no_grad():
        next(clone.hf_model.parameters()).add_(1.0)  # the weights are copies, not shared
    assert not torch.equal(clone(tokens), original(tokens))
    with original.hooks([("blocks.0.hook_resid_post", zero)]), pytest.raises(HookError, match="hooks are attached"):
        copy.deepcopy(original)
    assert original.active_hooks() == [] and clone.active_hooks() == []
