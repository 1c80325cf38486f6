"""Real-model tier: the embedded Gemma-3-270M (dequantized from the packaged GGUF, cached as safetensors)."""

from __future__ import annotations

import pytest
import torch

import circuitscope as cs
from circuitscope.core.loading import cache_home
from tests.tolerances import assert_sum_close

pytestmark = pytest.mark.real

PROMPT = "When Mary and John went to the store, John gave a drink to"
# Attention-path tolerance, measured: run_with_cache takes circuitscope's eager attention, plain transformers SDPA
# (another summation order, amplified through 18 layers of residuals up to 6.6e4). Over five batches of 10-27
# tokens the logits differed by at most 2.4e-6 of the largest |logit| (1.3e-4 at ~55; 4.0e-5 at ~29 for the
# prompts below); 2e-5 of it leaves an 8x margin and still fails on any real bug (a wrong mask, window or
# scale moves logits by 0.1 or more). Long prompts drift further (2e-4 of it over 2,201 tokens).
EAGER_VS_SDPA = 2e-5


@pytest.fixture(scope="module")
def plain() -> torch.nn.Module:
    """The same weights through plain transformers, with its default attention."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        str(cache_home() / "models" / cs.DEFAULT_MODEL), dtype=torch.float32
    ).eval()


def test_config_is_gemma_3_270m(gemma: cs.HookedModel) -> None:
    c = gemma.cfg
    assert (c.family, c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.d_head) == ("gemma", 18, 640, 4, 1, 256)
    assert c.d_vocab == 262144 and c.sliding_window is not None
    assert c.layer_types.count("full_attention") == 3


@torch.no_grad()
def test_logits_equal_plain_transformers(gemma: cs.HookedModel, plain: torch.nn.Module) -> None:
    tokens = gemma.to_tokens([PROMPT, "The capital of France is Paris, and the capital of Italy is"])
    expected = plain(input_ids=tokens).logits
    # no attention-internal hook: attention is transformers' own SDPA call, bit for bit
    torch.testing.assert_close(gemma(tokens), expected, atol=0, rtol=0)
    logits, cache = gemma.run_with_cache(tokens)  # every hook point, the eager attention path
    torch.testing.assert_close(logits, expected, atol=EAGER_VS_SDPA * float(expected.abs().max()), rtol=0)
    assert len(cache) == len(gemma.hook_names)
    assert gemma.active_hooks() == []


@torch.no_grad()
def test_ioi_prompt_predicts_mary(gemma: cs.HookedModel) -> None:
    tokens = gemma.to_tokens(PROMPT)
    assert int(tokens[0, 0]) == gemma.tokenizer.bos_token_id
    logits = gemma(tokens)
    assert gemma.to_string(int(logits[0, -1].argmax())) == " Mary"
    mary, john = gemma.to_single_token(" Mary"), gemma.to_single_token(" John")
    assert float(logits[0, -1, mary] - logits[0, -1, john]) > 0


@torch.no_grad()
def test_decompositions_hold_on_the_real_model(gemma: cs.HookedModel) -> None:
    tokens = gemma.to_tokens(PROMPT)
    _, cache = gemma.run_with_cache(
        tokens,
        names=lambda n: "resid" in n or n.endswith(("attn_out", "mlp_out", "hook_result", "ln_final.hook_normalized")),
    )
    final = cache["resid_post", -1]
    # the components re-added vs the model's running sum: float32 summation error, per element (measured <=6%
    # of the bound over five batches; a fixed atol cannot fit residuals from 1e-3 to 6.6e4)
    assert_sum_close(cache.decompose_resid().tensor, final)
    for layer in (0, 5, 17):
        # heads summed one by one vs o_proj's 4 x 256 products then the post-attention norm: the float32 bound
        # over those 1024 terms (measured <=14% of it over five batches)
        result = cache["result", layer].movedim(-2, 0)  # [head batch pos d_model]
        assert_sum_close(result, cache["attn_out", layer], terms=gemma.cfg.n_heads * gemma.cfg.d_head)
    lens = cache.accumulated_resid(apply_ln=True)
    # the final norm recomputed with its cached scale: a few float32 roundings (measured 1.9e-6 on values ~200)
    torch.testing.assert_close(lens.tensor[-1], cache["ln_final.hook_normalized"], atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_stop_early_matches_the_full_run(gemma: cs.HookedModel) -> None:
    tokens = gemma.to_tokens(PROMPT)
    name = "blocks.6.hook_resid_post"
    _, full = gemma.run_with_cache(tokens, names=[name])
    logits, early = gemma.run_with_cache(tokens, names=[name], stop_early=True)
    assert logits is None
    assert torch.equal(full[name], early[name])


@torch.no_grad()
def test_generation_with_a_hook(gemma: cs.HookedModel) -> None:
    plain_text = gemma.generate(PROMPT, max_new_tokens=3).text
    assert plain_text.startswith(" Mary")
    seen: list[int] = []

    def count(x: torch.Tensor, hook: cs.HookPoint) -> None:
        seen.append(x.shape[1])

    gemma.generate(PROMPT, max_new_tokens=3, hooks=[("blocks.0.hook_resid_pre", count)])
    assert seen[0] == gemma.to_tokens(PROMPT).shape[1] and seen[1:] == [1, 1]  # prompt, then one token a step
    assert gemma.active_hooks() == []
