"""The mixture-of-experts hook points (core/moe.py) and gpt-oss's attention sinks, on the tiny MoE recipes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from circuitscope import HookedModel
from circuitscope.core.hook_points import HookPoint
from circuitscope.core.moe import combine_experts, expert_layout
from circuitscope.errors import UnsupportedModelError
from tests.families.moe import RECIPES
from tests.tiny_models import VOCAB, TinyModels

MOE = [t.name for t in RECIPES]


def _tokens(seed: int = 1) -> torch.Tensor:
    return torch.randint(1, VOCAB, (2, 10), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", params=MOE)
def model(request: pytest.FixtureRequest, tiny: TinyModels) -> HookedModel:
    return tiny.hooked(request.param)


@torch.no_grad()
def test_mlp_out_is_the_weighted_sum_of_the_experts(model: HookedModel) -> None:
    """hook_mlp_out == sum_k weight_k * expert_out_k (+ the gated shared expert) (* Granite's multiplier), exactly."""
    layout = expert_layout(model)
    assert layout.layers == (0, 1) and layout.n_experts == 4 and layout.top_k == 2
    _, cache = model.run_with_cache(_tokens())
    for layer in layout.layers:
        pre = f"blocks.{layer}.mlp."
        weights, out = cache[pre + "hook_expert_weights"], cache[pre + "hook_expert_out"]
        assert out.shape == (2, 10, 2, model.cfg.d_model) and weights.shape == (2, 10, 2)
        expected = combine_experts(weights, out)
        if layout.shared_expert:
            expected = expected + cache[pre + "hook_shared_expert_out"]
        if model.cfg.residual_multiplier != 1.0:  # GraniteMoE: the stream gets the MoE output times it
            expected = expected * model.cfg.residual_multiplier
        assert torch.equal(expected, cache["mlp_out", layer])
        # combine_experts is the naive slot-by-slot sum
        naive = out[..., 0, :] * weights[..., 0, None] + out[..., 1, :] * weights[..., 1, None]
        assert torch.equal(combine_experts(weights, out), naive)


@torch.no_grad()
def test_routing_from_the_hooked_logits_matches_the_router(model: HookedModel) -> None:
    """With hook_router_logits active the top-k is recomputed from the logits: bit for bit the router's own."""
    tokens = _tokens()
    names = [f"blocks.{i}.mlp.hook_expert_{w}" for i in (0, 1) for w in ("weights", "indices")]
    _, native = model.run_with_cache(tokens, names=names)
    _, routed = model.run_with_cache(tokens, names=[*names, "*hook_router_logits"])
    for name in names:
        assert torch.equal(native[name], routed[name]), name
    logits, index = routed["blocks.0.mlp.hook_router_logits"], routed["blocks.0.mlp.hook_expert_indices"]
    assert logits.shape == (2, 10, 4)
    assert torch.equal(index, logits.topk(2, dim=-1).indices)  # the k largest logits, best first, in every family


@torch.no_grad()
def test_rewriting_router_logits_reroutes(model: HookedModel) -> None:
    def favour_three(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        x = x.clone()
        x[..., 3] += 100.0
        return x

    clean_logits = model(_tokens())
    logits, cache = model.run_with_cache(_tokens(), fwd_hooks=[("blocks.1.mlp.hook_router_logits", favour_three)])
    assert torch.all(cache["blocks.1.mlp.hook_expert_indices"][..., 0] == 3)
    assert not torch.allclose(logits, clean_logits, atol=1e-4)


@torch.no_grad()
def test_expert_weights_follow_the_family_normalisation(tiny: TinyModels) -> None:
    """Mixtral renormalises the top-2 softmax probabilities; Qwen2-MoE (norm_topk_prob=False) does not."""
    for name, renormalised in (("mixtral", True), ("qwen2_moe", False), ("gpt_oss", True)):
        _, cache = tiny.hooked(name).run_with_cache(_tokens(), names="*mlp.hook_*")
        logits, weights = cache["blocks.0.mlp.hook_router_logits"], cache["blocks.0.mlp.hook_expert_weights"]
        index = cache["blocks.0.mlp.hook_expert_indices"]
        if renormalised:
            torch.testing.assert_close(weights.sum(-1), torch.ones(2, 10), atol=1e-6, rtol=0)
        else:  # the raw softmax probabilities of the chosen experts
            probs = torch.softmax(logits, -1).gather(-1, index)
            torch.testing.assert_close(weights, probs, atol=1e-6, rtol=0)
            assert torch.all(weights.sum(-1) < 1)


@torch.no_grad()
def test_expert_out_is_the_expert_computed_by_hand(tiny: TinyModels) -> None:
    """Mixtral's SwiGLU and gpt-oss's clamped SwiGLU (with biases), from the stored 3-D expert weights."""
    for name in ("mixtral", "gpt_oss"):
        model = tiny.hooked(name)
        _, cache = model.run_with_cache(_tokens(), names=["blocks.1.ln2.hook_normalized", "blocks.1.mlp.hook_expert_*"])
        x = cache["ln2", 1][1, 4]
        experts = model.hf_model.get_submodule("model.layers.1.mlp.experts")
        w_gate_up, w_down = experts.get_parameter("gate_up_proj"), experts.get_parameter("down_proj")
        config = model.hf_model.config
        for slot in range(2):
            e = int(cache["blocks.1.mlp.hook_expert_indices"][1, 4, slot])
            if name == "mixtral":
                gate, up = (w_gate_up[e] @ x).chunk(2)
                out = w_down[e] @ (nn.functional.silu(gate) * up)
            else:
                limit, alpha = config.swiglu_limit, config.swiglu_alpha
                gate_up = x @ w_gate_up[e] + experts.get_parameter("gate_up_proj_bias")[e]
                gate, up = gate_up[::2].clamp(max=limit), gate_up[1::2].clamp(-limit, limit)
                out = ((up + 1) * gate * torch.sigmoid(gate * alpha)) @ w_down[e]
                out = out + experts.get_parameter("down_proj_bias")[e]
            # a hand matmul vs the experts' own: float32 rounding of 24-48 term sums (~1e-7)
            torch.testing.assert_close(cache["blocks.1.mlp.hook_expert_out"][1, 4, slot], out, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_experts_module_is_restored(model: HookedModel) -> None:
    model.run_with_cache(_tokens(), names="*hook_expert_out")
    for block in model.wiring.blocks:
        assert block.moe is not None and "forward" not in block.moe.experts.__dict__


@torch.no_grad()
def test_gpt_oss_pattern_is_transformers_eager_attention(tiny: TinyModels) -> None:
    """hook_pattern is transformers' eager sink attention, bit for bit; the sink takes the rest of each row."""
    reference, model = tiny.hf("gpt_oss"), tiny.hooked("gpt_oss")
    tokens = _tokens()
    expected = reference(input_ids=tokens, output_attentions=True).attentions
    _, cache = model.run_with_cache(tokens, names=["*hook_pattern", "*hook_attn_scores"])
    for layer in range(2):
        pattern = cache["pattern", layer]
        assert torch.equal(pattern, expected[layer])
        sinks = model.hf_model.get_parameter(f"model.layers.{layer}.self_attn.sinks")
        scores = cache["attn_scores", layer]  # masked scores, without the sink
        exp = torch.exp(scores - sinks[None, :, None, None])  # relative to the sink: sink share = 1 / (1 + sum)
        share = 1 / (1 + exp.sum(-1))
        torch.testing.assert_close(pattern.sum(-1) + share, torch.ones_like(share), atol=1e-6, rtol=0)


def test_a_dense_model_has_no_expert_layout(tiny: TinyModels) -> None:
    with pytest.raises(UnsupportedModelError, match=r"\(family llama\) has no mixture-of-experts layers"):
        expert_layout(tiny.text(), "tiny-llama")


def test_gradients_reach_the_router_and_the_experts(model: HookedModel) -> None:
    names = ["blocks.0.mlp.hook_router_logits", "blocks.0.mlp.hook_expert_weights", "blocks.0.mlp.hook_expert_out"]
    logits, cache = model.run_with_cache(_tokens(), names=names, grad=True)
    grads = torch.autograd.grad(logits.pow(2).mean(), [cache[name] for name in names])
    for name, grad in zip(names, grads, strict=True):
        assert grad.abs().sum() > 0, name
    model.hf_model.zero_grad(set_to_none=True)
