"""The family contract: parity and hook semantics for every adapter family, on tiny random models.

The contract goes by capability. Every recipe runs the residual-level contract (parity with plain
transformers, residual shapes, the exact decomposition, hooks rewriting downstream only, gradients reaching
an early hook, cleanup after exceptions, batched patching equal to the naive loop). The attention-level
tests (per-head shapes, weight views, head results, attention masks) run on the model's attention layers:
all of a transformer's, a hybrid's attention layers (Bamba), and for a model with none (Mamba) they check
instead that asking for heads is a clear error. ``_attention_layers`` checks each model against its
recipe's declaration (``Tiny.attention``), so no test passes by finding nothing to test.
"""

from __future__ import annotations

import pytest
import torch

from circuitscope import HookedModel
from circuitscope.analysis.patching import activation_patching, naive_activation_patching
from circuitscope.core.capabilities import attention_layers, sublayer_names
from circuitscope.core.hook_points import HookPoint
from circuitscope.core.norms import frozen_norm
from circuitscope.core.weights import head_in_weights, head_out_weights
from circuitscope.errors import HookNameError, UnsupportedAnalysisError, UnsupportedModelError
from tests.tiny_models import TINY, VOCAB, Tiny, TinyModels, random_task, reference_output

SEQ = 12


@pytest.fixture(scope="module", params=TINY, ids=lambda t: t.name)
def family(request: pytest.FixtureRequest, tiny: TinyModels) -> tuple[Tiny, torch.nn.Module, HookedModel]:
    recipe: Tiny = request.param
    reference = tiny.hf(recipe.name)  # plain transformers, its default attention
    model = tiny.hooked(recipe.name)  # a copy of the same build: identical weights
    return recipe, reference, model


def _attention_layers(recipe: Tiny, model: HookedModel) -> tuple[int, ...]:
    """The layers with attention heads, checked against what the recipe declares."""
    layers = attention_layers(model.cfg)
    assert bool(layers) == recipe.attention, f"{recipe.name}: attention layers {layers}, declared {recipe.attention}"
    assert set(layers) | set(model.cfg.mixer_layers) == set(range(model.cfg.n_layers))
    return layers


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
    recipe, _, model = family
    c = model.cfg
    _, cache = model.run_with_cache(tokens)
    b, p = tokens.shape
    for layer in range(c.n_layers):  # the residual level, every family
        for name in ("resid_pre", "resid_post", *sublayer_names(c, layer, model.hook_names)):
            assert cache[name, layer].shape == (b, p, c.d_model), (name, layer)
    if "blocks.0.mlp.hook_post" in cache:  # a mixture-of-experts block has no single MLP activation
        assert cache["post", 0].shape == (b, p, c.d_mlp)
    layers = _attention_layers(recipe, model)
    for layer in layers:  # the attention level, on the attention layers
        assert cache["q", layer].shape == (b, p, c.n_heads, c.d_head)
        assert cache["k", layer].shape == (b, p, c.n_kv_heads, c.d_head)
        assert cache["v", layer].shape == (b, p, c.n_kv_heads, c.d_head)
        assert cache["z", layer].shape == (b, p, c.n_heads, c.d_head)
        assert cache["pattern", layer].shape == (b, c.n_heads, p, p)
        assert cache["attn_scores", layer].shape == (b, c.n_heads, p, p)
        assert cache["result", layer].shape == (b, p, c.n_heads, c.d_model)
    if len(layers) == c.n_layers:  # stacked over layers: only where every layer has heads
        assert model.W_Q.shape == (c.n_layers, c.n_heads, c.d_model, c.d_head)
        assert model.W_K.shape == (c.n_layers, c.n_kv_heads, c.d_model, c.d_head)
        assert model.W_O.shape == (c.n_layers, c.n_heads, c.d_head, c.d_model)
    else:  # a mixer layer has no heads: a clear error naming the family, never a stack with holes
        with pytest.raises(UnsupportedAnalysisError, match=f"{c.family}.*no attention heads"):
            _ = model.W_Q
    if model.hf_model.get_output_embeddings() is not None:  # every model with an LM head exposes W_U
        assert model.W_U.shape == (c.d_model, c.d_vocab)


@torch.no_grad()
def test_weight_views_reproduce_hooks(family: tuple[Tiny, torch.nn.Module, HookedModel], tokens: torch.Tensor) -> None:
    """hook_v = ln1(x) @ W_V + b_V and the per-head W_O map hook_z onto hook_result (on an attention layer)."""
    recipe, _, model = family
    _, cache = model.run_with_cache(tokens)
    layers = _attention_layers(recipe, model)
    if not layers:
        with pytest.raises(UnsupportedAnalysisError, match=f"{model.cfg.family} has no attention heads"):
            _ = model.W_O
        return
    layer, mods, ad = layers[-1], model.wiring.blocks[layers[-1]], model.adapter
    (w_q, b_q), _, (w_v, b_v) = head_in_weights(mods.q, mods.k, mods.v, mods.qkv, ad.qkv_layout, model.cfg, ad.conv1d)
    w_o = head_out_weights(mods.o, model.cfg, ad.conv1d)[0]
    if len(layers) == model.cfg.n_layers:  # the stacked views are these very per-layer views
        assert torch.equal(model.W_V[layer], w_v) and torch.equal(model.W_O[layer], w_o)
    x = cache["ln1", layer] if f"blocks.{layer}.ln1.hook_normalized" in cache else cache["resid_pre", layer]
    v = torch.einsum("bpm,hmd->bphd", x, w_v) + (b_v if b_v is not None else 0)
    # an einsum over per-head weight views vs the model's fused linear: BLAS may sum d_model products in
    # another order (exact here, float32 rounding ~1e-7 of values ~1 elsewhere)
    torch.testing.assert_close(v, cache["v", layer], atol=1e-5, rtol=1e-5)
    if not model.adapter.rotary:
        q = torch.einsum("bpm,hmd->bphd", x, w_q) + (b_q if b_q is not None else 0)
        torch.testing.assert_close(q, cache["q", layer], atol=1e-5, rtol=1e-5)
    if model.adapter.attn_out_norm is None and model.cfg.residual != "post_norm":
        raw = torch.einsum("bphd,hdm->bphm", cache["z", layer], w_o)
        torch.testing.assert_close(raw, cache["result", layer], atol=0, rtol=0)  # hook_result is this very einsum


@torch.no_grad()
def test_head_results_sum_to_attn_out(family: tuple[Tiny, torch.nn.Module, HookedModel], tokens: torch.Tensor) -> None:
    recipe, _, model = family
    _, cache = model.run_with_cache(tokens)
    layers = _attention_layers(recipe, model)
    if len(layers) < model.cfg.n_layers:  # per-head DLA over every layer needs heads in every layer
        with pytest.raises(UnsupportedAnalysisError, match=f"{model.cfg.family}.*no attention heads"):
            cache.stack_head_results()
    for layer in layers:
        w_o, b_o = head_out_weights(model.wiring.blocks[layer].o, model.cfg, model.adapter.conv1d)
        b_o = b_o if b_o is not None else torch.zeros(model.cfg.d_model)
        heads = cache["result", layer].sum(-2)
        if model.cfg.residual == "post_norm":
            # LN(x + sum_h r_h + b_O) - x, with the LN scale frozen: the heads plus the
            # normed bias and incoming stream, minus that stream, give the update exactly
            norm = model.wiring.blocks[layer].attn_out_norm  # the LayerNorm of x + attn
            assert norm is not None
            ln = frozen_norm(norm)
            x = cache["resid_pre", layer]
            u = cache["resid_mid", layer]  # LN output; recover the LN input's scale from heads + rest
            total = torch.einsum("bphd,hdm->bpm", cache["z", layer], w_o) + b_o + x
            scale = ln.scale(total)
            assert ln.bias is not None
            rest = ln.apply(b_o + x, scale) + ln.bias - x
            # regrouped sums through the frozen LayerNorm: measured 5e-7 on values ~0.4, float32 rounding
            torch.testing.assert_close(heads + rest, cache["attn_out", layer], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(x + cache["attn_out", layer], u, atol=1e-5, rtol=1e-5)  # (u - x) + x: 1 ulp
        else:
            expected = cache["attn_out", layer]
            # the heads summed one by one vs o_proj's single matmul: float32 rounding, measured <=7e-7 on ~3
            torch.testing.assert_close(heads + b_o, expected, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_residual_stream_decomposes(family: tuple[Tiny, torch.nn.Module, HookedModel], tokens: torch.Tensor) -> None:
    _, _, model = family
    _, cache = model.run_with_cache(tokens)
    last = model.cfg.n_layers - 1
    stack = cache.decompose_resid()
    subs = [sublayer_names(model.cfg, layer, model.hook_names) for layer in range(model.cfg.n_layers)]
    assert stack.labels[-sum(map(len, subs)) :] == [f"{i}_{sub}" for i, names in enumerate(subs) for sub in names]
    assert (len(model.cfg.mixer_layers) == 0) == all(s[0] == "attn_out" for s in subs)  # mixer layers: L_mixer_out
    # the components re-added in one sum vs the model's running additions: a few float32 roundings of ~6
    torch.testing.assert_close(stack.total(), cache["resid_post", last], atol=1e-5, rtol=1e-5)
    for layer in range(model.cfg.n_layers):
        pre, post = cache["resid_pre", layer], cache["resid_post", layer]
        first, *mlp = subs[layer]
        if not mlp:  # a Mamba block: x + mixer(norm(x)), the block's own addition, bit-exact
            assert torch.equal(pre + cache[first, layer], post)
            continue
        if model.cfg.residual == "parallel":  # x + (attn + mlp) regrouped: one rounding, <=2 ulp of values ~4
            torch.testing.assert_close(
                pre + cache["attn_out", layer] + cache["mlp_out", layer], post, atol=1e-6, rtol=0
            )
            continue
        mid = cache["resid_mid", layer]
        if model.cfg.residual == "pre_norm":  # the very additions the model makes: bit-exact
            assert torch.equal(pre + cache[first, layer], mid)
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
    layers = _attention_layers(recipe, model)
    for layer in model.cfg.mixer_layers:  # no heads to look at: the hook's absence is explained, not just unknown
        with pytest.raises(HookNameError, match=f"{model.cfg.family}.*no attention heads.*hook_mixer_out"):
            model.run_with_cache(tokens, names=f"blocks.{layer}.attn.hook_pattern")
    if not layers:
        return
    _, cache = model.run_with_cache(tokens, names=[f"blocks.{layer}.attn.hook_pattern" for layer in layers])
    q = torch.arange(SEQ)[:, None]
    k = torch.arange(SEQ)[None, :]
    for layer in layers:
        pattern = cache["pattern", layer]
        if recipe.sinks:  # the sink logit takes its share of every row: the real keys keep less than 1
            assert torch.all(pattern.sum(-1) < 1)
        else:  # a softmax row sums to 1 up to float32 rounding of SEQ terms (12 * eps ~1.4e-6; measured 2.4e-7)
            torch.testing.assert_close(pattern.sum(-1), torch.ones(pattern.shape[:-1]), atol=1e-5, rtol=0)
        allowed = torch.ones(SEQ, SEQ, dtype=torch.bool)
        if recipe.causal:
            allowed &= k <= q
        if recipe.sliding_window and model.cfg.layer_types[layer] == "sliding_attention":
            # a decoder sees its w latest keys; an encoder (ModernBERT) every key within w on either side
            allowed &= (q - k) < recipe.sliding_window if recipe.causal else (q - k).abs() <= recipe.sliding_window
        assert torch.all(pattern[..., ~allowed] == 0)
        assert torch.all(pattern[..., allowed] > 0)


def _noise_like(x: torch.Tensor) -> torch.Tensor:
    if not x.is_floating_point():  # chosen experts' indices: swap the top-k order (each index gets another weight)
        return x.flip(-1) - x
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
    recipe, _, model = family
    grads: dict[str, torch.Tensor] = {}

    def grab(grad: torch.Tensor, hook: HookPoint) -> None:
        grads[hook.name] = grad.clone()

    name = "blocks.0.hook_resid_pre"
    first = _attention_layers(recipe, model)[:1]  # the first attention layer's per-head views, if any
    # and every mixer-internal hook of layer 0 (Mamba's hook_conv hands the scan the tensor it saw)
    viewed = [f"blocks.{layer}.attn.hook_{n}" for layer in first for n in ("z", "v")]
    viewed += [n for n in model.hook_names if n.startswith("blocks.0.mixer.")]
    logits, cache = model.run_with_cache(tokens, names=[name, *viewed], grad=True)
    for per_head in viewed:  # viewed activations stay in the graph
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
    recipe, _, model = family
    calls: list[str] = []

    def user_hook(x: torch.Tensor, hook: HookPoint) -> None:
        calls.append(hook.name)

    layers = _attention_layers(recipe, model)
    inner = f"blocks.{layers[-1]}.attn.hook_pattern" if layers else "blocks.1.mixer.hook_in_proj"
    handle = model.add_hook("blocks.0.hook_resid_post", user_hook)
    try:
        with pytest.raises(error), model.hooks([(inner, lambda x, hook: None)]):
            assert len(model.active_hooks()) == 2
            raise error("boom")
        assert [h.name for h in model.active_hooks()] == ["blocks.0.hook_resid_post"]

        def failing(x: torch.Tensor, hook: HookPoint) -> None:
            raise error("inside the forward pass")

        with pytest.raises(error):
            last = sublayer_names(model.cfg, 1, model.hook_names)[-1]  # the block's last sublayer
            model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.1.hook_{last}", failing)])
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
    blocks = [model.wiring.blocks[layer] for layer in layers]
    assert not any(b.attn._circuitscope_core.active for b in blocks)  # type: ignore[union-attr]  # the attention module's attribute set by circuitscope at wrap time


def test_batched_patching_equals_the_naive_loop(family: tuple[Tiny, torch.nn.Module, HookedModel]) -> None:
    """Every causal recipe: the residual stream and each sublayer under each metric, and every per-head target on
    the attention layers (a hybrid's only; none of Mamba's, whose per-head patching is the capability error)."""
    recipe, _, model = family
    if not recipe.causal:  # patching resumes a decoder's forward pass: an encoder is refused, not answered
        with pytest.raises(UnsupportedModelError, match=model.cfg.family):
            activation_patching(model, random_task(2, 5, seed=0, corrupt=(2, 3)), "resid_pre")
        return
    task = random_task(3, 6, seed=0, corrupt=(2, 3), answer_from_end=(1, 2, 1))
    first = sublayer_names(model.cfg, 0, model.hook_names)
    # one naive forward pass per patched component: the targets that reach each kind of hook, kept few (CPU time)
    runs: list[tuple[str, str, list[int] | None]] = [("resid_pre", "logit_diff", None), ("resid_pre", "kl", None)]
    if len(first) > 1:  # an MLP in every block
        runs.append(("mlp_out", "prob", None))
    if model.cfg.mixer_layers:  # the state-space mixers' outputs, in the attention slot
        runs.append(("mixer_out", "logit_diff", list(model.cfg.mixer_layers)))
    layers = list(_attention_layers(recipe, model))
    if layers:  # a head's output, its keys (over the key/value heads) and its pattern, on the attention layers
        runs += [(t, "logit_diff", layers) for t in ("head_out", "k", "pattern")]
        runs.append(("head_out_by_pos", "logit_diff", layers[-1:]))
    if not layers:  # per-head patching on a model without heads: the capability error
        with pytest.raises(UnsupportedAnalysisError, match=f"{model.cfg.family}.*no attention heads"):
            activation_patching(model, task, "head_out")
    elif len(layers) < model.cfg.n_layers:  # a hybrid: by default over its attention layers; a mixer layer is refused
        by_default = activation_patching(model, task, "head_out")
        assert torch.equal(by_default.raw, activation_patching(model, task, "head_out", layers=layers).raw)
        mixer = next(layer for layer in range(model.cfg.n_layers) if layer not in layers)
        with pytest.raises(UnsupportedAnalysisError, match=f"{model.cfg.family}.*no attention heads"):
            activation_patching(model, task, "head_out", layers=[mixer])
    for target, metric, only in runs:
        fast = activation_patching(model, task, target, metric=metric, layers=only, batch_size=7)  # type: ignore[arg-type]  # a str for the Literal
        slow = naive_activation_patching(model, task, target, metric=metric, layers=only)  # type: ignore[arg-type]  # a str for the Literal
        assert fast.axes == slow.axes and fast.scores.shape == slow.scores.shape
        # batched patches (batch_size=7) vs one forward pass each: float32 rounding of metrics ~0.3 (exact here)
        torch.testing.assert_close(fast.raw, slow.raw, atol=1e-5, rtol=1e-4, msg=f"{recipe.name} {target} {metric}")
        assert fast.clean_value == pytest.approx(slow.clean_value, abs=1e-5)
    assert model.active_hooks() == []
