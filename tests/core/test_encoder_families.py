"""Facts of the encoder families of issue 14 (RoBERTa, DistilBERT, ModernBERT) beyond the family contract."""

from __future__ import annotations

import pytest
import torch

from circuitscope import fold_layer_norm
from circuitscope.analysis.dla import direct_logit_attribution
from circuitscope.core.hook_points import HookPoint
from circuitscope.errors import UnsupportedAnalysisError
from tests.tiny_models import VOCAB, TinyModels, random_task

SEQ = 9


def _tokens(low: int = 3) -> torch.Tensor:
    """Token ids from ``low`` up: none is a pad (RoBERTa's is 1) or a special token."""
    return torch.randint(low, VOCAB, (2, SEQ), generator=torch.Generator().manual_seed(5))


@torch.no_grad()
def test_roberta_positions_start_after_the_padding_rows(tiny: TinyModels) -> None:
    model = tiny.hooked("roberta")
    table = model.wiring.pos_embed
    assert table is not None
    assert model.W_pos.shape[0] == model.hf_model.config.max_position_embeddings - 2  # rows 0, 1: before position 0
    _, cache = model.run_with_cache(_tokens(), names="hook_pos_embed")
    for row in range(2):  # position i of a pad-free prompt is embedded with W_pos[i]
        assert torch.equal(cache["hook_pos_embed"][row], model.W_pos[:SEQ])


@torch.no_grad()
def test_distilbert_updates_are_the_norm_of_the_sum_minus_the_stream(tiny: TinyModels) -> None:
    """hook_attn_out = sa_layer_norm(x + out_lin(z)) - x, with x the block input the norm's sum started from."""
    model = tiny.hooked("distilbert")
    _, cache = model.run_with_cache(_tokens())
    for layer, mods in enumerate(model.wiring.blocks):
        assert mods.attn_out_norm is not None
        x = cache["resid_pre", layer]
        s = torch.einsum("bphd,hdm->bpm", cache["z", layer], model.W_O[layer]) + model.b_O[layer]
        # the einsum over heads vs out_lin's matmul: float32 rounding before the norm (~1e-7 of ~1)
        torch.testing.assert_close(mods.attn_out_norm(x + s) - x, cache["attn_out", layer], atol=1e-5, rtol=1e-5)


@torch.no_grad()
@pytest.mark.parametrize("name", ["blocks.0.hook_attn_out", "blocks.1.hook_mlp_out"])
def test_distilbert_an_edited_update_is_what_the_stream_gets(tiny: TinyModels, name: str) -> None:
    """Adding d to a post-norm update moves the stream right after it by exactly d (up to one rounding)."""
    model = tiny.hooked("distilbert")
    after = "blocks.0.hook_resid_mid" if "attn" in name else "blocks.1.hook_resid_post"
    _, clean = model.run_with_cache(_tokens(), names=[after])
    delta = torch.randn(2, SEQ, model.cfg.d_model, generator=torch.Generator().manual_seed(6))

    def add(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        return x + delta

    _, edited = model.run_with_cache(_tokens(), names=[after], fwd_hooks=[(name, add)])
    # (x + (u + d)) regrouped against (x + u) + d: a float32 rounding of values ~4
    torch.testing.assert_close(edited[after], clean[after] + delta, atol=1e-5, rtol=0)


@torch.no_grad()
def test_modernbert_decodes_through_its_head_and_refuses_linear_readouts(tiny: TinyModels) -> None:
    model = tiny.hooked("modernbert")
    decoder = model.wiring.unembed
    assert isinstance(decoder, torch.nn.Linear)
    assert torch.equal(model.W_U, decoder.weight.T)  # W_U reads the head's output, not the residual stream
    tokens = _tokens()
    logits, cache = model.run_with_cache(tokens, names=["blocks.1.hook_resid_post", "ln_final.hook_normalized"])
    assert torch.equal(model.unembed_resid(cache["resid_post", 1]), logits)  # final norm, head, decoder
    assert torch.equal(model.unembed_resid(cache["ln_final.hook_normalized"], normed=True), logits)
    linear = cache["ln_final.hook_normalized"] @ model.W_U + decoder.bias
    assert not torch.allclose(linear, logits, atol=1e-2)  # the head matters: reading W_U off the norm is wrong
    task = random_task(2, SEQ, seed=0, corrupt=(2, 4))
    with pytest.raises(UnsupportedAnalysisError, match="nonlinear prediction head"):
        direct_logit_attribution(model, task)
    with pytest.raises(UnsupportedAnalysisError, match="nonlinear prediction head"):
        fold_layer_norm(model)


@torch.no_grad()
def test_modernbert_first_layer_reads_the_stream_unnormed(tiny: TinyModels) -> None:
    model = tiny.hooked("modernbert_encoder")
    _, cache = model.run_with_cache(_tokens(), names=["blocks.0.hook_resid_pre", "blocks.0.ln1.hook_normalized"])
    assert torch.equal(cache["ln1", 0], cache["resid_pre", 0])  # layer 0's attn_norm is nn.Identity
    assert model.cfg.layer_types == ("full_attention", "sliding_attention") and model.cfg.sliding_window == 2
