"""Families that compute attention in their own code (GPT-Neo, Falcon): the rerouted attention hooks."""

from __future__ import annotations

import math

import pytest
import torch
import transformers as tf

from circuitscope import HookedModel, UnsupportedModelError, load_model
from circuitscope.core import loading
from circuitscope.core.hook_points import HookPoint
from tests.tiny_models import VOCAB, TinyModels

SEQ = 10


def _tokens() -> torch.Tensor:
    return torch.randint(1, VOCAB, (2, SEQ), generator=torch.Generator().manual_seed(4))


def _rerouted(model: HookedModel) -> list[bool]:
    """Per layer: whether the attention module's method is shadowed by circuitscope's rerouting now."""
    method = model.adapter.attn_method
    assert method is not None
    return [method in b.attn.__dict__ for b in model.wiring.blocks]


@torch.no_grad()
@pytest.mark.parametrize("name", ["gpt_neo", "falcon", "falcon_new_arch"])
def test_rerouting_lasts_only_while_an_attention_hook_is_active(tiny: TinyModels, name: str) -> None:
    model = tiny.hooked(name)
    plain = model(_tokens())
    assert _rerouted(model) == [False, False]
    seen: list[list[bool]] = []

    def look(pattern: torch.Tensor, hook: HookPoint) -> None:
        seen.append(_rerouted(model))

    with model.hooks([("blocks.1.attn.hook_pattern", look)]):
        hooked = model(_tokens())
    assert seen == [[False, True]]  # only the hooked layer's attention is rerouted
    assert _rerouted(model) == [False, False]
    assert torch.equal(model(_tokens()), plain)  # the family's own method is back, bit for bit
    if name == "gpt_neo":  # the hook module is GPT-Neo's own math: bit-exact even when rerouted
        assert torch.equal(hooked, plain)
    else:  # Falcon's own forward runs SDPA; the rerouted one the eager softmax (measured 2e-7 on ~1)
        torch.testing.assert_close(hooked, plain, atol=1e-5, rtol=0)
    assert model.hf_model.config._attn_implementation != "circuitscope"  # the family kept its own


@torch.no_grad()
def test_gpt_neo_scores_are_unscaled_and_windowed(tiny: TinyModels) -> None:
    """hook_attn_scores is q.k (no 1/sqrt(d_head)) where allowed, and the mask floor elsewhere."""
    model = tiny.hooked("gpt_neo")
    _, cache = model.run_with_cache(_tokens())
    q_idx, k_idx = torch.arange(SEQ)[:, None], torch.arange(SEQ)[None, :]
    window = model.cfg.sliding_window
    assert window == 4 and model.cfg.layer_types == ("sliding_attention", "full_attention")
    for layer in range(2):
        scores = cache["attn_scores", layer]
        naive = torch.einsum("bqhd,bkhd->bhqk", cache["q", layer], cache["k", layer])
        allowed = k_idx <= q_idx
        if model.cfg.layer_types[layer] == "sliding_attention":
            allowed &= q_idx - k_idx < window
        # an einsum over d_head vs the module's matmul: float32 rounding of 8-term sums
        torch.testing.assert_close(scores[..., allowed], naive[..., allowed], atol=1e-5, rtol=1e-5)
        # the buffer's floor, plus the causal mask's own floor where both mask (-inf): what GPT-Neo computes
        assert torch.all(scores[..., ~allowed] <= torch.finfo(torch.float32).min)


@torch.no_grad()
@pytest.mark.parametrize("name", ["falcon", "falcon_new_arch", "falcon_sequential"])
def test_falcon_scores_are_rotated_queries_on_their_group_keys(tiny: TinyModels, name: str) -> None:
    model = tiny.hooked(name)
    c = model.cfg
    expected_kv = {"falcon": 1, "falcon_new_arch": 2, "falcon_sequential": 4}[name]
    assert c.n_kv_heads == expected_kv
    _, cache = model.run_with_cache(_tokens())
    rot_q, rot_k = cache["rot_q", 1], cache["rot_k", 1]
    assert rot_k.shape == (2, SEQ, expected_kv, c.d_head)
    keys = rot_k.repeat_interleave(c.n_heads // expected_kv, dim=2)  # query head h reads kv head h // group size
    naive = torch.einsum("bqhd,bkhd->bhqk", rot_q, keys) / math.sqrt(c.d_head)
    causal = torch.arange(SEQ)[None, :] <= torch.arange(SEQ)[:, None]
    # an einsum vs the module's matmul: float32 rounding of 8-term sums of values ~1
    torch.testing.assert_close(cache["attn_scores", 1][..., causal], naive[..., causal], atol=1e-5, rtol=1e-5)
    # and the pattern is what drives z: z = pattern @ v over each query head's group
    values = cache["v", 1].repeat_interleave(c.n_heads // expected_kv, dim=2)
    z = torch.einsum("bhqk,bkhd->bqhd", cache["pattern", 1], values)
    torch.testing.assert_close(z, cache["z", 1], atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_falcon_pattern_edit_reaches_the_output(tiny: TinyModels) -> None:
    """Rewriting the pattern in the rerouted forward is what the layer then computes with."""
    model = tiny.hooked("falcon_new_arch")
    tokens = _tokens()

    def uniform(pattern: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        causal = torch.tril(torch.ones(SEQ, SEQ))
        return (causal / causal.sum(-1, keepdim=True)).expand_as(pattern)

    _, cache = model.run_with_cache(tokens, fwd_hooks=[("blocks.0.attn.hook_pattern", uniform)])
    mean_v = torch.cumsum(cache["v", 0], dim=1) / torch.arange(1, SEQ + 1)[None, :, None, None]
    z = mean_v.repeat_interleave(model.cfg.n_heads // model.cfg.n_kv_heads, dim=2)
    torch.testing.assert_close(cache["z", 0], z, atol=1e-6, rtol=1e-5)  # a running mean of v: float32 rounding


def test_falcon_alibi_is_refused() -> None:
    config = tf.FalconConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, alibi=True, multi_query=False
    )
    with pytest.raises(UnsupportedModelError, match="alibi"):
        HookedModel(tf.FalconForCausalLM(config))


def test_loading_keeps_an_own_attention_family_on_its_own_implementation() -> None:
    falcon = tf.FalconConfig(architectures=["FalconForCausalLM"])
    assert loading._attention_choice(falcon) == {}
    assert loading._attention_choice(tf.GPTNeoConfig()) == {}
    assert loading._attention_choice(tf.LlamaConfig()) == {"attn_implementation": "circuitscope"}


@torch.no_grad()
@pytest.mark.parametrize("name", ["gpt_neo", "falcon_new_arch"])
def test_a_saved_own_attention_model_loads_with_its_own_attention(tiny: TinyModels, name: str) -> None:
    """from_pretrained with circuitscope's implementation would fail (Falcon) or change the mask (GPT-Neo)."""
    model = load_model(str(tiny.folder(name)))
    reference = tiny.hf(name)
    assert model.hf_model.config._attn_implementation == reference.config._attn_implementation
    tokens = _tokens()
    assert torch.equal(model(tokens), reference(input_ids=tokens).logits)
