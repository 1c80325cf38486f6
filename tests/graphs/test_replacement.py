"""The local replacement model: it reproduces the real model, and it is affine in its sources."""

from __future__ import annotations

import pytest
import torch

import circuitscope as cs
from circuitscope.errors import UnsupportedAnalysisError
from circuitscope.graphs import Sources, local_replacement
from circuitscope.graphs.frozen import skipped_projections
from circuitscope.transcoders.errors import TranscoderModelError
from circuitscope.transcoders.modules import TranscoderSet
from tests.graphs.conftest import random_transcoders
from tests.tiny_models import TinyModels

Pair = tuple[cs.HookedModel, TranscoderSet]


def test_exact_transcoders_make_the_replacement_model_the_real_model(relu64: Pair, prompt: torch.Tensor) -> None:
    model, tc = relu64
    repl = local_replacement(model, tc, prompt)
    assert float(repl.errors.abs().max()) < 1e-12  # the transcoders are the MLPs
    run = repl.run(model, tc, batch=3)
    for row in range(3):  # the real model's logits on the pass that recorded the patterns
        torch.testing.assert_close(run.logits[row].detach(), repl.logits, rtol=0, atol=1e-12)
    # and on a plain forward pass (its attention differs from the pattern-hooked one by ~1e-9 in float64)
    torch.testing.assert_close(repl.logits, model(prompt[None])[0].detach(), rtol=0, atol=1e-7)


def test_errors_make_any_transcoders_reproduce_the_real_model(
    noisy: TranscoderSet, prompt: torch.Tensor, relu64: Pair
) -> None:
    model, tc = relu64[0], noisy
    repl = local_replacement(model, tc, prompt)
    assert float(repl.errors.abs().max()) > 0.1  # random transcoders: the errors carry the MLPs
    torch.testing.assert_close(repl.run(model, tc).logits[0].detach(), repl.logits, rtol=0, atol=1e-12)


def test_skipped_projections_change_nothing_on_separate_queries_and_keys(tiny: TinyModels) -> None:
    """The replacement pass skips the MLPs' and the queries' and keys' projections (graphs/frozen.py): it still
    reproduces the real model, and under the skip those projections return zeros."""
    model = tiny.hooked("gemma3")  # separate q and k projections, gated MLPs, norms after each sublayer
    tc = random_transcoders(model)
    prompt = torch.tensor([3, 1, 4, 1, 5, 9])
    repl = local_replacement(model, tc, prompt)
    torch.testing.assert_close(repl.run(model, tc, batch=2).logits[1].detach(), repl.logits, rtol=1e-5, atol=1e-5)
    block = model.wiring.blocks[0]
    assert block.q is not None and block.k is not None and block.mlp_down is not None
    x = torch.randn(2, model.cfg.d_model)
    mlp = block.block.get_submodule("mlp")  # Gemma 3's MLP module: skipped whole
    with skipped_projections(model):
        assert not block.q(x).any() and not block.k(x).any() and not mlp(x).any()
    assert block.q(x).any() and mlp(x).any()  # restored after the block


def test_the_replacement_model_is_affine_in_embeddings_errors_and_features(relu64: Pair, prompt: torch.Tensor) -> None:
    model, _ = relu64
    tc = random_transcoders(model, "cross_layer", skip=True)
    repl = local_replacement(model, tc, prompt)
    g = torch.Generator().manual_seed(3)

    def draw() -> Sources:
        return Sources(
            torch.randn(repl.embed.shape, generator=g, dtype=torch.float64),
            torch.randn(repl.errors.shape, generator=g, dtype=torch.float64),
            torch.randn(repl.features.activation.shape, generator=g, dtype=torch.float64),
        )

    a, b = draw(), draw()
    zero = Sources(torch.zeros_like(a.embed), torch.zeros_like(a.errors), torch.zeros_like(a.acts))
    mixed = Sources(2 * a.embed - b.embed, 2 * a.errors - b.errors, 2 * a.acts - b.acts)
    runs = [repl.run(model, tc, s) for s in (a, b, zero, mixed)]
    for read in (lambda r: r.final, lambda r: r.inputs[1], lambda r: r.logits):
        fa, fb, f0, fm = (read(r).detach() for r in runs)
        # f(2a - b) - f(0) == 2 (f(a) - f(0)) - (f(b) - f(0)): linear in the sources around the bias f(0)
        torch.testing.assert_close(fm - f0, 2 * (fa - f0) - (fb - f0), rtol=1e-9, atol=1e-9)
    assert float((runs[0].final - runs[2].final).detach().abs().max()) > 1e-3  # the sources do move it


def test_attention_and_norms_stay_frozen(relu64: Pair, prompt: torch.Tensor) -> None:
    """Doubling every source doubles what they add: a live norm would undo the doubling, live attention bend it."""
    model, _ = relu64
    tc = random_transcoders(model)
    repl = local_replacement(model, tc, prompt)
    src = repl.sources
    base = repl.run(model, tc, Sources(0 * src.embed, 0 * src.errors, 0 * src.acts)).final
    one = repl.run(model, tc).final - base
    two = repl.run(model, tc, Sources(2 * src.embed, 2 * src.errors, 2 * src.acts)).final - base
    torch.testing.assert_close(two.detach(), 2 * one.detach(), rtol=1e-9, atol=1e-9)


def test_refuses_transcoders_missing_a_layer_and_unfreezable_models(
    relu64: Pair, prompt: torch.Tensor, tiny: TinyModels
) -> None:
    model, tc = relu64
    partial = TranscoderSet(type(tc.cfg)(**{**tc.cfg.to_dict(), "layers": (0, 1)}))
    with pytest.raises(TranscoderModelError, match="a transcoder on every layer"):
        local_replacement(model, partial, prompt)
    neox = tiny.hooked("gpt_neox")  # parallel attention and MLP: no pre-norm residual to freeze
    with pytest.raises(UnsupportedAnalysisError, match="causal pre-norm"):
        local_replacement(neox, random_transcoders(neox), prompt)
