"""The mechanisms the dense decoder families of issue 14 need, beyond the family contract (test_families.py).

Config names an adapter declares, refusals before any work, OPT's position offset, one norm feeding both
sublayers, norms read by behaviour (Cohere's and OLMo's LayerNorms), logit scales and Granite's multipliers.
DLA, the logit lens and ``unembed_resid`` on these families are in tests/analysis/test_dla_and_lens.py, the weight
transforms in tests/core/test_transforms.py, parametrised with the first families.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import transformers as tf

from circuitscope import HookedModel, UnsupportedModelError
from circuitscope.circuits.graph import CircuitError
from circuitscope.circuits.intervene import graph_of
from circuitscope.core.config import _SIZE_NAMES, ModelConfig
from circuitscope.core.loading import load_model
from circuitscope.core.norms import frozen_norm
from circuitscope.models import adapter_for
from circuitscope.models.base import CONFIG_SIZES
from tests.tiny_models import VOCAB, TinyModels

SHARED_NORM = ["gptj", "phi", "phi_qk_layernorm", "stablelm_parallel", "cohere", "cohere2"]
SCALED_LOGITS = {"cohere": 0.5, "cohere2": 0.5, "granite": 1 / 1.7}


def _tokens() -> torch.Tensor:
    return torch.randint(1, VOCAB, (2, 10), generator=torch.Generator().manual_seed(5))


def _tiny_opt(**overrides: object) -> tf.OPTForCausalLM:
    config = dict(
        vocab_size=VOCAB, hidden_size=32, ffn_dim=48, num_hidden_layers=2, num_attention_heads=4, pad_token_id=0
    )
    return tf.OPTForCausalLM(tf.OPTConfig(**{**config, **overrides, "bos_token_id": 1, "eos_token_id": 2}))


def test_every_size_has_its_usual_config_names() -> None:
    assert set(_SIZE_NAMES) == set(CONFIG_SIZES)
    with pytest.raises(ValueError, match="not sizes"):
        dataclasses.replace(adapter_for("opt"), config_names=(("d_ff", "ffn_dim"),))


def test_sizes_come_from_the_names_the_adapter_declares(tiny: TinyModels) -> None:
    model = tiny.hooked("opt")
    config = model.hf_model.config
    assert not hasattr(config, "intermediate_size") and config.ffn_dim == 48
    assert model.cfg.d_mlp == 48 and model.W_in.shape[-1] == 48
    config.ffn_dim = 40  # the adapter's name is the one read
    assert ModelConfig.from_hf(config, model.adapter).d_mlp == 40


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"do_layer_norm_before": False}, "do_layer_norm_before=False"),
        ({"word_embed_proj_dim": 16}, "word_embed_proj_dim=16 differs from hidden_size=32"),
    ],
)
def test_opt_wirings_it_cannot_hook_are_refused_before_any_work(overrides: dict[str, object], named: str) -> None:
    torch.manual_seed(0)
    hf = _tiny_opt(**overrides)
    with pytest.raises(UnsupportedModelError, match=named):
        HookedModel(hf)
    assert hf.config._attn_implementation != "circuitscope"  # refused before the model was touched
    assert not [m for m in hf.modules() if m._forward_hooks or m._forward_pre_hooks]


def test_load_model_refuses_such_a_folder_before_reading_its_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    _tiny_opt(do_layer_norm_before=False).save_pretrained(tmp_path)
    for weights in tmp_path.glob("*.safetensors"):
        weights.unlink()  # were the weights read, this would be a LoadError about the missing file
    with pytest.raises(UnsupportedModelError, match="do_layer_norm_before=False"):
        load_model(tmp_path)


@torch.no_grad()
def test_opt_position_rows_start_at_position_zero(tiny: TinyModels) -> None:
    model = tiny.hooked("opt")
    tokens = _tokens()
    _, cache = model.run_with_cache(tokens, names=["hook_pos_embed"])
    pos = cache["hook_pos_embed"]
    assert pos.shape == (*tokens.shape, model.cfg.d_model)  # OPT's positions follow the mask: one row per prompt
    assert model.W_pos.shape[0] == model.cfg.n_ctx
    assert torch.equal(pos[0], model.W_pos[: tokens.shape[1]])


@pytest.mark.parametrize("name", SHARED_NORM)
@torch.no_grad()
def test_one_norm_feeds_both_sublayers(tiny: TinyModels, name: str) -> None:
    model = tiny.hooked(name)
    assert model.cfg.residual == "parallel"
    assert "blocks.0.ln2.hook_normalized" not in model.hook_names
    assert "blocks.0.hook_resid_mid" not in model.hook_names
    _, cache = model.run_with_cache(_tokens())
    for layer in range(model.cfg.n_layers):
        w = model.W_gate[layer] if model.cfg.gated_mlp else model.W_in[layer]
        b = 0 if model.cfg.gated_mlp else model.b_in[layer]
        # the MLP reads ln1's output: a matmul vs the module's addmm, float32 rounding (~1e-7 of ~1)
        torch.testing.assert_close(cache["ln1", layer] @ w + b, cache["pre", layer], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["gptj", "cohere"])
def test_circuit_graphs_refuse_a_shared_norm(tiny: TinyModels, name: str) -> None:
    """EAP puts an MLP's input edges in at ln2; with one norm for both sublayers that would move attention too."""
    with pytest.raises(CircuitError, match="one norm feeding both attention and the MLP"):
        graph_of(tiny.hooked(name))
    with pytest.raises(CircuitError, match="has no input norms"):
        graph_of(tiny.hooked("olmo2"))


@pytest.mark.parametrize("name", ["olmo2", "olmo3"])
def test_output_normed_blocks_have_no_input_norm_hooks(tiny: TinyModels, name: str) -> None:
    names = tiny.hooked(name).hook_names
    assert not [n for n in names if ".ln1." in n or ".ln2." in n]
    assert "blocks.1.hook_resid_mid" in names
    with pytest.raises(ValueError, match="needs ln1"):
        dataclasses.replace(adapter_for("olmo2"), attn_out_norm=None)


@pytest.mark.parametrize(
    ("name", "path"), [("olmo", "model.layers.0.input_layernorm"), ("cohere", "model.layers.0.input_layernorm")]
)
@torch.no_grad()
def test_norms_are_read_by_behaviour(tiny: TinyModels, name: str, path: str) -> None:
    """OLMo's LayerNorm has no parameters and no eps attribute; Cohere's centres but is no nn.LayerNorm."""
    module = tiny.hf(name).get_submodule(path)
    norm = frozen_norm(module)
    assert norm.center and norm.bias is None
    stored = getattr(module, "weight", None)
    expected = torch.ones(32) if stored is None else stored.detach()
    torch.testing.assert_close(norm.weight, expected, atol=1e-6, rtol=1e-6)  # probed: ~1 ulp of ~1
    assert norm.eps == pytest.approx(getattr(module, "variance_epsilon", 1e-5), rel=1e-3)  # OLMo: F.layer_norm's
    x = torch.randn(3, 5, 32, generator=torch.Generator().manual_seed(0)) * 0.1  # small: eps matters
    torch.testing.assert_close(norm.apply(x, norm.scale(x)), module(x), atol=1e-6, rtol=1e-5)


@torch.no_grad()
def test_an_rmsnorm_with_a_tiny_eps_is_not_taken_for_a_layernorm() -> None:
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    module = LlamaRMSNorm(32, eps=1e-12)  # f(1) and f(2) agree in float32 here; f(-1) = -f(1) still tells them apart
    module.weight.add_(torch.randn(32, generator=torch.Generator().manual_seed(0)) * 0.1)
    norm = frozen_norm(module)
    assert not norm.center and norm.bias is None and norm.eps == 1e-12
    x = torch.randn(4, 32, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(norm.apply(x, norm.scale(x)), module(x), atol=1e-6, rtol=1e-5)  # float32 rounding


@pytest.mark.parametrize("name", sorted(SCALED_LOGITS))
@torch.no_grad()
def test_logit_scale_goes_with_the_unembedding(tiny: TinyModels, name: str) -> None:
    """The factor itself; ``unembed_resid`` applying it is tests/analysis/test_dla_and_lens.py's."""
    model = tiny.hooked(name)
    assert model.wiring.logit_factor() == pytest.approx(SCALED_LOGITS[name], rel=1e-12)
    logits, cache = model.run_with_cache(_tokens(), names=["ln_final.hook_normalized"])
    unembed = model.wiring.unembed
    assert unembed is not None
    raw = unembed(cache["ln_final.hook_normalized"])
    torch.testing.assert_close(logits, raw * model.wiring.logit_factor(), atol=1e-6, rtol=1e-6)  # * m vs / d


@torch.no_grad()
def test_granite_hooks_see_what_enters_the_stream(tiny: TinyModels) -> None:
    model = tiny.hooked("granite")
    cfg = model.cfg
    assert (cfg.embed_multiplier, cfg.residual_multiplier) == (3.0, 0.3)
    tokens = _tokens()
    _, cache = model.run_with_cache(tokens)
    assert torch.equal(cache["hook_embed"], model.W_E[tokens] * 3.0)
    assert torch.equal(cache["hook_embed"], cache["resid_pre", 0])  # the blocks receive hook_embed itself
    post = cache["post", 0] @ model.W_out[0] + model.b_out[0]  # W_out includes the multiplier
    torch.testing.assert_close(post, cache["mlp_out", 0], atol=1e-6, rtol=1e-5)  # matmul orders: float32 rounding
    delta = torch.randn(cache["attn_out", 0].shape, generator=torch.Generator().manual_seed(2))
    with model.hooks([("blocks.0.hook_attn_out", lambda x, hook: x + delta)]):
        _, edited = model.run_with_cache(tokens, names=["blocks.0.hook_resid_mid"])
    # a rewritten output goes on as new / m and the model multiplies by m again: one rounding (~1e-7 of ~3)
    expected = cache["resid_pre", 0] + cache["attn_out", 0] + delta
    torch.testing.assert_close(edited["resid_mid", 0], expected, atol=1e-6, rtol=1e-6)


def test_granite_gradients_reach_a_scaled_hook(tiny: TinyModels) -> None:
    """An unchanged scaled hook stays on the autograd path: d/d attn_out = d/d resid_mid (resid_mid = pre + attn)."""
    model = tiny.hooked("granite")
    names = ["blocks.0.hook_attn_out", "blocks.0.hook_mlp_out", "hook_embed"]
    mids: list[torch.Tensor] = []

    def keep(x: torch.Tensor, hook: object) -> torch.Tensor:
        mids.append(x * 1.0)  # a new tensor: the model goes on from it, so it is on the autograd path
        return mids[-1]

    logits, cache = model.run_with_cache(
        _tokens(), names=names, grad=True, fwd_hooks=[("blocks.0.hook_resid_mid", keep)]
    )
    g_attn, g_mlp, g_embed, g_mid = torch.autograd.grad(logits.pow(2).mean(), [*(cache[n] for n in names), mids[0]])
    assert g_attn.abs().sum() > 0 and g_mlp.abs().sum() > 0 and g_embed.abs().sum() > 0
    torch.testing.assert_close(g_attn, g_mid, atol=1e-7, rtol=1e-5)  # (g / m) * m: float32 rounding
    model.hf_model.zero_grad(set_to_none=True)
