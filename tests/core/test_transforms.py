"""Explicit weight transforms preserve what they promise, on every family with norms to fold or weights to centre."""

from __future__ import annotations

import pytest
import torch

from circuitscope import UnsupportedModelError
from circuitscope.core.norms import frozen_norm
from circuitscope.core.transforms import center_unembed, center_writing_weights, fold_layer_norm
from tests.families import dense
from tests.tiny_models import VOCAB, TinyModels

FAMILIES = ["gpt2", "gpt_neox", "gpt_neox_sequential", "llama_gqa", "qwen3", "gemma", "gemma3"]
DENSE = [t.name for t in dense.RECIPES]
LAYERNORM = ["opt", "gptj", "phi", "phi_qk_layernorm", "olmo", "stablelm", "stablelm_parallel", "cohere", "cohere2"]
RMSNORM = ["phi3", "olmo2", "olmo3", "granite", "smollm3"]


def _tokens() -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("name", FAMILIES + DENSE)
@torch.no_grad()
def test_folding_norms_keeps_logits(tiny: TinyModels, name: str) -> None:
    model = tiny.hooked(name)
    tokens = _tokens()
    before = model(tokens)
    embed_before = model.W_E.clone()
    fold_layer_norm(model)
    # folded weights are products rounded to float32 (~1e-7 relative each): measured 4.5e-7 on logits ~2
    torch.testing.assert_close(model(tokens), before, atol=1e-5, rtol=1e-5)
    for block in model.wiring.blocks:
        for norm in (block.ln1, block.ln2):
            if norm is None:  # one norm feeding both sublayers (GPT-J, Phi, ...) or output norms only (OLMo 2)
                assert name in DENSE
                continue
            torch.testing.assert_close(frozen_norm(norm).weight, torch.ones(model.cfg.d_model), atol=0, rtol=0)  # set
    assert torch.equal(model.W_E, embed_before), "folding the final norm must not touch tied embeddings"


@pytest.mark.parametrize("name", ["gpt2", "gpt_neox", *LAYERNORM])
@torch.no_grad()
def test_centering_writing_weights_keeps_logits_for_layernorm(tiny: TinyModels, name: str) -> None:
    model = tiny.hooked(name)
    tokens = _tokens()
    before = model(tokens)
    center_writing_weights(model)
    # centred weights are rounded differences (~1e-7 relative each): measured 3.9e-7 on logits ~1
    torch.testing.assert_close(model(tokens), before, atol=1e-5, rtol=1e-5)
    _, cache = model.run_with_cache(tokens, names=["blocks.0.hook_attn_out", "blocks.1.hook_mlp_out"])
    for act in cache.values():  # a mean of d_model float32 values that cancel: rounding ~1e-8 (measured)
        torch.testing.assert_close(act.mean(-1), torch.zeros(act.shape[:-1]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["llama_gqa", *RMSNORM])
def test_centering_is_refused_where_it_would_change_the_model(tiny: TinyModels, name: str) -> None:
    with pytest.raises(UnsupportedModelError, match=r"RMSNorm|norm after the attention output"):
        center_writing_weights(tiny.hooked(name))


def test_folding_is_refused_for_a_post_norm_model(tiny: TinyModels) -> None:
    with pytest.raises(UnsupportedModelError, match="post-norm"):
        fold_layer_norm(tiny.hooked("bert"))


@pytest.mark.parametrize("name", ["gpt2", "gemma3", "phi", "cohere", "granite"])
@torch.no_grad()
def test_centering_the_unembedding_keeps_log_probs(tiny: TinyModels, name: str) -> None:
    """An LM-head bias (Phi) and scaled logits (Cohere, Granite) still shift every logit by one constant."""
    model = tiny.hooked(name)
    tokens = _tokens()
    before = model(tokens).log_softmax(-1)
    center_unembed(model)
    after = model(tokens)
    # a shift of every logit cancels in log_softmax up to float32 rounding: measured 9.5e-7 on ~6
    torch.testing.assert_close(after.log_softmax(-1), before, atol=1e-5, rtol=1e-5)
    if getattr(model.hf_model.config.get_text_config(), "final_logit_softcapping", None) is None:
        torch.testing.assert_close(after.mean(-1), torch.zeros(after.shape[:-1]), atol=1e-5, rtol=0)  # ~1e-8
