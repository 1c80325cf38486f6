"""Parity and hook semantics for every adapter family, on tiny random models."""

from __future__ import annotations

import pytest
import torch

from circuitscope import HookedModel
from circuitscope.core.hook_points import HookPoint
from circuitscope.core.norms import frozen_norm
from tests.tiny_models import TINY, VOCAB, Tiny, TinyModels, reference_output

SEQ = 12


@pytest.fixture(scope="module", params=TINY, ids=lambda t: t.name)
def family(request: pytest.FixtureRequest, tiny: TinyModels) -> tuple[Tiny, torch.nn.Module, HookedModel]:
    recipe: Tiny = request.param
    reference = tiny.hf(recipe.name)  # plain transformers, its default attention
    model = tiny.hooked(recipe.name)  # a copy of the same build: identical weights
    return recipe, reference, model


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(1, VOCAB, (2, SEQ), generator=g)


@torch.no_grad()
def test_logits_equal_transformers(family: tuple[Tiny, torch.nn.Module, HookedModel], tokens: torch.Tensor) -> None:
    _, reference, model = family
    expected = reference_output(reference, tokens)
    # no attention-internal hook: the reference's own attention call (SDPA; eager for softcapping), bit for bit
    torch.testing.assert_close(model(tokens), expected, atol=0, rtol=0)
    logits, cache = model.run_with_cache(tokens)  # every hook attached: the eager attention path
    # eager softmax(QK^T)V sums in another order than SDPA: measured <=5e-7 on logits ~3 over the 13 families
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)
    assert set(cache) == set(model.hook_names)
    assert model.active_hooks() == []


@torch.no_grad()
def test_shapes_follow_transformerlens(family: tuple[Tiny, torch.nn.Module, HookedModel], tokens: torch.Tensor) -> None:
    _, _, model = family
    c = model.cfg
    _, cache = model.run_with_cache(tokens)
    b, p = tokens.shape
    assert cache["q", 0].shape == (b, p, c.n_heads, c.d_head)
    assert cache["k", 0].shape == (b, p, c.n_kv_heads, c.d_head)
    assert cache["v", 0].shape == (b, p, c.n_kv_heads, c.d_head)
    assert cache["z", 1].shape == (b, p, c.n_heads, c.d_head)
    assert cache["pattern", 1].shape == (b, c.n_heads, p, p)
    assert cache["attn_scores", 1].shape == (b, c.n_heads, p, p)
    assert cache["result", 1].shape == (b, p, c.n_heads, c.d_model)
    assert cache["post", 0].shape == (b, p, c.d_mlp)
    assert cache["resid_post", 1].shape == (b, p, c.d_model)
    assert model.W_Q.shape == (c.n_layers, c.n_heads, c.d_model, c.d_head)
    assert model.W_K.shape == (c.n_layers, c.n_kv_heads, c.d_model, c.d_head)
    assert model.W_O.shape == (c.n_layers, c.n_heads, c.d_head, c.d_model)
    if model.hf_model.__class__.__name__ != "BertModel":  # every model with an LM head exposes W_U
        assert model.W_U.shape == (c.d_model, c.d_vocab)


@torch.no_grad()
def test_weight_views_reproduce_hooks(family: tuple[Tiny, torch.nn.Module, HookedModel], tokens: torch.Tensor) -> None:
    """hook_v = ln1(x) @ W_V + b_V and the per-head W_O map hook_z onto hook_result."""
    recipe, _, model = family
    _, cache = model.run_with_cache(tokens)
    layer = 1
    x = cache["ln1", layer] if "blocks.1.ln1.hook_normalized" in cache else cache["resid_pre", layer]
    v = torch.einsum("bpm,hmd->bphd", x, model.W_V[layer]) + model.b_V[layer]
    # an einsum over per-head weight views vs the model's fused linear: BLAS may sum d_model products in
    # another order (exact here, float32 rounding ~1e-7 of values ~1 elsewhere)
    torch.testing.assert_close(v, cache["v", layer], atol=1e-5, rtol=1e-5)
    if not model.adapter.rotary:
        q = torch.einsum("bpm,hmd->bphd", x, model.W_Q[layer]) + model.b_Q[layer]
        torch.testing.assert_close(q, cache["q", layer], atol=1e-5, rtol=1e-5)
    if model.adapter.attn_out_norm is None and model.cfg.residual != "post_norm":
        raw = torch.einsum("bphd,hdm->bphm", cache["z", layer], model.W_O[layer])
        torch.testing.assert_close(raw, cache["result", layer], atol=0, rtol=0)  # hook_result is this very einsum
    del recipe


@torch.no_grad()
def test_head_results_sum_to_attn_out(family: tuple[Tiny, torch.nn.Module, HookedModel], tokens: torch.Tensor) -> None:
    _, _, model = family
    _, cache = model.run_with_cache(tokens)
    for layer in range(model.cfg.n_layers):
        heads = cache["result", layer].sum(-2)
        if model.cfg.residual == "post_norm":
            # LN(x + sum_h r_h + b_O) - x, with the LN scale frozen: the heads plus the
            # normed bias and incoming stream, minus that stream, give the update exactly
            ln = frozen_norm(model.wiring.blocks[layer].block.get_submodule("attention.output.LayerNorm"))
            x = cache["resid_pre", layer]
            u = cache["resid_mid", layer]  # LN output; recover the LN input's scale from heads + rest
            total = torch.einsum("bphd,hdm->bpm", cache["z", layer], model.W_O[layer]) + model.b_O[layer] + x
            scale = ln.scale(total)
            assert ln.bias is not None
            rest = ln.apply(model.b_O[layer] + x, scale) + ln.bias - x
            # regrouped sums through the frozen LayerNorm: measured 5e-7 on values ~0.4, float32 rounding
            torch.testing.assert_close(heads + rest, cache["attn_out", layer], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(x + cache["attn_out", layer], u, atol=1e-5, rtol=1e-5)  # (u - x) + x: 1 ulp
        else:
            expected = cache["attn_out", layer]
            # the heads summed one by one vs o_proj's single matmul: float32 rounding, measured <=7e-7 on ~3
            torch.testing.assert_close(heads + model.b_O[layer], expected, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_residual_stream_decomposes(family: tuple[Tiny, torch.nn.Module, HookedModel], tokens: torch.Tensor) -> None:
    _, _, model = family
    _, cache = model.run_with_cache(tokens)
    last = model.cfg.n_layers - 1
    stack = cache.decompose_resid()
    assert stack.labels[-1] == f"{last}_mlp_out"
    # the components re-added in one sum vs the model's running additions: a few float32 roundings of ~6
    torch.testing.assert_close(stack.total(), cache["resid_post", last], atol=1e-5, rtol=1e-5)
    for layer in range(model.cfg.n_layers):
        pre, post = cache["resid_pre", layer], cache["resid_post", layer]
        if model.cfg.residual == "parallel":  # x + (attn + mlp) regrouped: one rounding, <=2 ulp of values ~4
            torch.testing.assert_close(
                pre + cache["attn_out", layer] + cache["mlp_out", layer], post, atol=1e-6, rtol=0
            )
            continue
        mid = cache["resid_mid", layer]
        if model.cfg.residual == "pre_norm":  # the very additions the model makes: bit-exact
            assert torch.equal(pre + cache["attn_out", layer], mid)
            assert torch.equal(mid + cache["mlp_out", layer], post)
        else:  # post-norm: the update is cached as mid - pre, so adding it back rounds once (<=2 ulp of ~4)
            torch.testing.assert_close(pre + cache["attn_out", layer], mid, atol=1e-6, rtol=0)
            torch.testing.assert_close(mid + cache["mlp_out", layer], post, atol=1e-6, rtol=0)
    partial = cache.decompose_resid(layer=1)  # as for the full stack: float32 rounding of a regrouped sum
    torch.testing.assert_close(partial.total(), cache["resid_pre", 1], atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_attention_patterns_respect_masks(
    family: tuple[Tiny, torch.nn.Module, HookedModel], tokens: torch.Tensor
) -> None:
    recipe, _, model = family
    _, cache = model.run_with_cache(tokens, names="*hook_pattern")
    q = torch.arange(SEQ)[:, None]
    k = torch.arange(SEQ)[None, :]
    for layer in range(model.cfg.n_layers):
        pattern = cache["pattern", layer]
        # a softmax row sums to 1 up to float32 rounding of SEQ terms (12 * eps ~1.4e-6; measured 2.4e-7)
        torch.testing.assert_close(pattern.sum(-1), torch.ones(pattern.shape[:-1]), atol=1e-5, rtol=0)
        allowed = torch.ones(SEQ, SEQ, dtype=torch.bool)
        if recipe.causal:
            allowed &= k <= q
        if recipe.sliding_window and model.cfg.layer_types[layer] == "sliding_attention":
            allowed &= (q - k) < recipe.sliding_window
        assert torch.all(pattern[..., ~allowed] == 0)
        assert torch.all(pattern[..., allowed] > 0)


def _noise_like(x: torch.Tensor) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    return torch.randn(x.shape, generator=g, dtype=x.dtype) * 0.5


@torch.no_grad()
def test_rewriting_a_hook_changes_downstream_only(
    family: tuple[Tiny, torch.nn.Module, HookedModel], tokens: torch.Tensor
) -> None:
    _, _, model = family
    clean_logits, clean = model.run_with_cache(tokens)
    targets = [
        n for n in model.hook_names if n.startswith("blocks.1.") or n in ("hook_embed", "blocks.0.hook_resid_mid")
    ]
    if "ln_final.hook_normalized" in model.hook_names:
        targets.append("ln_final.hook_normalized")
    for name in targets:
        added: dict[str, torch.Tensor] = {}

        def edit(x: torch.Tensor, hook: HookPoint, added: dict[str, torch.Tensor] = added) -> torch.Tensor:
            added[hook.name] = _noise_like(x)
            return x + added[hook.name]

        logits, cache = model.run_with_cache(tokens, fwd_hooks=[(name, edit)])
        assert cache[name].shape == clean[name].shape
        torch.testing.assert_close(cache[name], clean[name] + added[name], atol=0, rtol=0, msg=name)
        # noise of std 0.5 must move the logits far beyond float32 rounding (~1e-6)
        assert not torch.allclose(logits, clean_logits, atol=1e-4), f"editing {name} did not change the output"
        layer = int(name.split(".")[1]) if name.startswith("blocks.") else -1
        for other in model.hook_names:
            other_layer = int(other.split(".")[1]) if other.startswith("blocks.") else None
            upstream = other_layer is not None and other_layer < layer
            if other in ("hook_embed", "hook_pos_embed") and name not in ("hook_embed",):
                upstream = True
            if upstream:
                assert torch.equal(cache[other], clean[other]), f"editing {name} changed upstream {other}"
        assert model.active_hooks() == []


def test_gradients_reach_an_early_hook(family: tuple[Tiny, torch.nn.Module, HookedModel], tokens: torch.Tensor) -> None:
    _, _, model = family
    grads: dict[str, torch.Tensor] = {}

    def grab(grad: torch.Tensor, hook: HookPoint) -> None:
        grads[hook.name] = grad.clone()

    name = "blocks.0.hook_resid_pre"
    logits, cache = model.run_with_cache(
        tokens, names=[name, "blocks.0.attn.hook_z", "blocks.0.attn.hook_v"], grad=True
    )
    for per_head in ("blocks.0.attn.hook_z", "blocks.0.attn.hook_v"):  # viewed activations stay in the graph
        (g,) = torch.autograd.grad(logits.pow(2).mean(), cache[per_head], retain_graph=True)
        assert g.abs().sum() > 0
    with model.hooks(bwd_hooks=[(name, grab)]):
        out = model(tokens)
        out.pow(2).mean().backward()
    assert name in grads and grads[name].abs().sum() > 0
    (expected,) = torch.autograd.grad(logits.pow(2).mean(), cache[name])
    torch.testing.assert_close(grads[name], expected, atol=0, rtol=0)  # the same forward and backward graph
    model.hf_model.zero_grad(set_to_none=True)
    assert model.active_hooks() == []


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_hooks_are_removed_after_an_exception(
    family: tuple[Tiny, torch.nn.Module, HookedModel], tokens: torch.Tensor, error: type[BaseException]
) -> None:
    _, _, model = family
    calls: list[str] = []

    def user_hook(x: torch.Tensor, hook: HookPoint) -> None:
        calls.append(hook.name)

    handle = model.add_hook("blocks.0.hook_resid_post", user_hook)
    try:
        with pytest.raises(error), model.hooks([("blocks.1.attn.hook_pattern", lambda x, hook: None)]):
            assert len(model.active_hooks()) == 2
            raise error("boom")
        assert [h.name for h in model.active_hooks()] == ["blocks.0.hook_resid_post"]

        def failing(x: torch.Tensor, hook: HookPoint) -> None:
            raise error("inside the forward pass")

        with pytest.raises(error):
            model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.hook_mlp_out", failing)])
        assert [h.name for h in model.active_hooks()] == ["blocks.0.hook_resid_post"]
        with torch.no_grad():
            model(tokens)
        assert calls[-1] == "blocks.0.hook_resid_post"
    finally:
        handle.remove()
    assert model.active_hooks() == []
    leftovers = [
        name for name, module in model.hf_model.named_modules() if module._forward_hooks or module._forward_pre_hooks
    ]
    assert leftovers == [], f"PyTorch hooks left on {leftovers}"
    assert not any(b.attn._circuitscope_core.active for b in model.wiring.blocks)  # type: ignore[union-attr]  # the attention module's attribute set by circuitscope at wrap time
