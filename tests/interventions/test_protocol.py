"""The intervention protocol: steering vectors and SAE splices through ``model.apply`` and ``interventions=``.

Each route must give exactly what plain hooks built by hand give, leave nothing attached however it
exits, and refuse an intervention made for another model before attaching anything.
"""

from __future__ import annotations

import pytest
import torch

import circuitscope as cs
from circuitscope import sae as S  # noqa: N812
from circuitscope.core.hook_points import HookFn, HookPoint
from circuitscope.interventions import Intervention, PositionCounter
from circuitscope.steering import SteeringVector, SteeringVectorMismatchError, model_fingerprint, steering_hooks
from tests.tiny_models import TinyModels

HOOK = "blocks.0.hook_resid_post"
LATER = "blocks.1.hook_resid_post"
TEXT = "the cat sat on the mat"


@pytest.fixture(scope="module")
def vector(text_model: cs.HookedModel) -> SteeringVector:
    g = torch.Generator().manual_seed(0)
    direction = torch.randn(text_model.cfg.d_model, generator=g)
    return SteeringVector(direction, HOOK, coefficient=4.0, start_pos=2, model=model_fingerprint(text_model))


@pytest.fixture(scope="module")
def sae(text_model: cs.HookedModel) -> S.SAE:
    """A TopK SAE at HOOK that leaves BOS alone (``exclude_bos`` is the default)."""
    sae = S.create_sae(S.SAEConfig(architecture="topk", d_in=text_model.cfg.d_model, d_sae=64, k=4, hook_name=HOOK))
    sae.initialize(torch.Generator().manual_seed(0))
    assert sae.cfg.exclude_bos
    return sae


def _steer_by_hand(vector: SteeringVector) -> list[tuple[str, HookFn]]:
    def add(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        out = x.clone()
        out[:, vector.start_pos :] += vector.coefficient * vector.vector
        return out

    return [(vector.hook, add)]


def _splice_by_hand(text_model: cs.HookedModel, sae: S.SAE, tokens: torch.Tensor) -> list[tuple[str, HookFn]]:
    bos = (tokens[:, 0] == text_model.tok.bos_token_id)[:, None, None]

    def splice(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        recons = sae.decode(sae.encode(x)).to(x.dtype)
        out = recons.clone()
        out[:, :1] = torch.where(bos, x[:, :1], recons[:, :1])
        return out

    return [(HOOK, splice)]


def test_both_implement_the_protocol(vector: SteeringVector, sae: S.SAE) -> None:
    assert isinstance(vector, Intervention)
    assert isinstance(S.SAESplice(sae), Intervention)
    assert not isinstance(steering_hooks(vector), Intervention)


@torch.no_grad()
def test_apply_and_interventions_equal_plain_hooks(
    text_model: cs.HookedModel, vector: SteeringVector, sae: S.SAE
) -> None:
    tokens = text_model.to_tokens(TEXT)
    splice = S.SAESplice(sae)
    by_hand = text_model.run_with_hooks(tokens, _steer_by_hand(vector) + _splice_by_hand(text_model, sae, tokens))
    assert not torch.equal(by_hand, text_model(tokens))  # both edits matter
    with text_model.apply(vector, splice):
        assert len(text_model.active_hooks()) == 2
        inside = text_model(tokens)
    assert torch.equal(inside, by_hand)
    assert torch.equal(text_model(tokens, interventions=[vector, splice]), by_hand)
    assert torch.equal(text_model.run_with_hooks(tokens, interventions=[vector, splice]), by_hand)
    # the old routes give the same: the vector's own hooks and the SAE package's run_with_sae
    steered = text_model.run_with_hooks(tokens, steering_hooks(vector, text_model))
    assert torch.equal(text_model(tokens, interventions=vector), steered)
    assert torch.equal(text_model(tokens, interventions=[splice]), S.run_with_sae(text_model, tokens, sae))
    assert text_model.active_hooks() == []


@torch.no_grad()
def test_run_with_cache_sees_the_interventions(text_model: cs.HookedModel, vector: SteeringVector, sae: S.SAE) -> None:
    tokens = text_model.to_tokens(TEXT)
    splice = S.SAESplice(sae, keep_error=True)
    hand = _steer_by_hand(vector)
    logits, cache = text_model.run_with_cache(tokens, names=[HOOK, LATER], interventions=[vector])
    ref_logits, ref = text_model.run_with_cache(tokens, names=[HOOK, LATER], fwd_hooks=hand)
    assert logits is not None and torch.equal(logits, ref_logits)
    for name in (HOOK, LATER):
        assert torch.equal(cache[name], ref[name])
    # keep_error: the splice changes nothing downstream; the cache of the SAE helper agrees
    _, kept = text_model.run_with_cache(tokens, names=[LATER], interventions=[splice])
    _, sae_cache = S.run_with_cache_and_saes(text_model, tokens, sae, names=[LATER], keep_error=True)
    torch.testing.assert_close(kept[LATER], text_model.run_with_cache(tokens, names=[LATER])[1][LATER])
    assert torch.equal(kept[LATER], sae_cache[LATER])
    assert text_model.active_hooks() == []


@torch.no_grad()
def test_generation_with_interventions_equals_full_forwards(
    text_model: cs.HookedModel, vector: SteeringVector, sae: S.SAE
) -> None:
    """Cached generation steps see one position each: the vector's window and the splice's BOS still hold."""
    v = vector.with_(coefficient=6.0, start_pos=3)
    for interventions in ([v], [S.SAESplice(sae)], [v, S.SAESplice(sae)]):
        got = text_model.generate("abc", max_new_tokens=5, interventions=interventions)
        tokens = text_model.to_tokens("abc")
        for _ in range(5):
            logits = text_model(tokens, interventions=interventions)
            tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], 1)
        assert got.tokens.tolist() == tokens[0].tolist()
    assert text_model.generate("abc", 5, interventions=[v]).tokens.tolist() == (
        text_model.generate("abc", 5, hooks=steering_hooks(v, text_model)).tokens.tolist()
    )
    assert (
        text_model.generate("abc", 5).tokens.tolist()
        != text_model.generate("abc", 5, interventions=[v]).tokens.tolist()
    )
    assert text_model.active_hooks() == [] and text_model.pass_tokens is None


def test_hooks_are_gone_after_the_block_even_when_it_raises(text_model: cs.HookedModel, vector: SteeringVector) -> None:
    with pytest.raises(RuntimeError, match="inside"), text_model.apply(vector, S.SAESplice(_any_sae(text_model))):
        assert len(text_model.active_hooks()) == 2
        raise RuntimeError("inside")
    assert text_model.active_hooks() == []
    with pytest.raises(cs.ShapeError):  # a pass that fails half-way
        text_model(torch.tensor([[1, 10_000]]), interventions=[vector])
    assert text_model.active_hooks() == [] and text_model.pass_tokens is None


def _any_sae(text_model: cs.HookedModel, hook: str = HOOK) -> S.SAE:
    return S.create_sae(S.SAEConfig(architecture="relu", d_in=text_model.cfg.d_model, d_sae=8, hook_name=hook))


def test_a_wrong_model_intervention_is_refused_before_anything_is_attached(
    tiny: TinyModels, text_model: cs.HookedModel, vector: SteeringVector
) -> None:
    other = tiny.text(seed=1)
    foreign = SteeringVector(vector.vector, HOOK, model=model_fingerprint(other))
    missing = S.SAESplice(_any_sae(text_model, "blocks.7.hook_resid_post"))
    for bad, error in ((foreign, SteeringVectorMismatchError), (missing, cs.HookNameError)):
        with pytest.raises(error) as caught, text_model.apply(vector, bad):
            pass
        assert isinstance(caught.value, cs.CircuitscopeError)
        with pytest.raises(error):
            text_model(TEXT, interventions=[vector, bad])
        with pytest.raises(error):
            text_model.run_with_cache(TEXT, interventions=[bad])
        with pytest.raises(error):
            text_model.generate("ab", 2, interventions=[bad])
        assert text_model.active_hooks() == []
    with pytest.raises(cs.HookError, match="interventions are values"):
        text_model(TEXT, interventions=[steering_hooks(vector)])
    with pytest.raises(cs.HookError, match="interventions are values"), text_model.apply([vector]):  # type: ignore[arg-type]  # the bad input under test (a vector, not an intervention)
        pass
    assert text_model.active_hooks() == []


def test_a_function_keeps_nn_module_apply_meaning(text_model: cs.HookedModel) -> None:
    seen: list[torch.nn.Module] = []
    assert text_model.apply(seen.append) is text_model
    assert text_model.hf_model in seen and text_model.active_hooks() == []


def test_the_position_counter_continues_one_position_passes() -> None:
    counter = PositionCounter()
    assert [counter.offset(torch.zeros(1, n, 2)) for n in (4, 1, 1, 3, 1)] == [0, 4, 5, 0, 3]
