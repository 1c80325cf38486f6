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


# the module's own copy of the text model (as in test_steering.py): the tests here attach hooks to it
@pytest.fixture(scope="module")
def model(tiny: TinyModels) -> cs.HookedModel:
    return tiny.text()


@pytest.fixture(scope="module")
def vector(model: cs.HookedModel) -> SteeringVector:
    g = torch.Generator().manual_seed(0)
    direction = torch.randn(model.cfg.d_model, generator=g)
    return SteeringVector(direction, HOOK, coefficient=4.0, start_pos=2, model=model_fingerprint(model))


@pytest.fixture(scope="module")
def sae(model: cs.HookedModel) -> S.SAE:
    """A TopK SAE at HOOK that leaves BOS alone (``exclude_bos`` is the default)."""
    sae = S.create_sae(S.SAEConfig(architecture="topk", d_in=model.cfg.d_model, d_sae=64, k=4, hook_name=HOOK))
    sae.initialize(torch.Generator().manual_seed(0))
    assert sae.cfg.exclude_bos
    return sae


def _steer_by_hand(vector: SteeringVector) -> list[tuple[str, HookFn]]:
    def add(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        out = x.clone()
        out[:, vector.start_pos :] += vector.coefficient * vector.vector
        return out

    return [(vector.hook, add)]


def _splice_by_hand(model: cs.HookedModel, sae: S.SAE, tokens: torch.Tensor) -> list[tuple[str, HookFn]]:
    bos = (tokens[:, 0] == model.tok.bos_token_id)[:, None, None]

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
def test_apply_and_interventions_equal_plain_hooks(model: cs.HookedModel, vector: SteeringVector, sae: S.SAE) -> None:
    tokens = model.to_tokens(TEXT)
    splice = S.SAESplice(sae)
    by_hand = model.run_with_hooks(tokens, _steer_by_hand(vector) + _splice_by_hand(model, sae, tokens))
    assert not torch.equal(by_hand, model(tokens))  # both edits matter
    with model.apply(vector, splice):
        assert len(model.active_hooks()) == 2
        inside = model(tokens)
    assert torch.equal(inside, by_hand)
    assert torch.equal(model(tokens, interventions=[vector, splice]), by_hand)
    assert torch.equal(model.run_with_hooks(tokens, interventions=[vector, splice]), by_hand)
    # the old routes give the same: the vector's own hooks and the SAE package's run_with_sae
    steered = model.run_with_hooks(tokens, steering_hooks(vector, model))
    assert torch.equal(model(tokens, interventions=vector), steered)
    assert torch.equal(model(tokens, interventions=[splice]), S.run_with_sae(model, tokens, sae))
    assert model.active_hooks() == []


@torch.no_grad()
def test_run_with_cache_sees_the_interventions(model: cs.HookedModel, vector: SteeringVector, sae: S.SAE) -> None:
    tokens = model.to_tokens(TEXT)
    splice = S.SAESplice(sae, keep_error=True)
    hand = _steer_by_hand(vector)
    logits, cache = model.run_with_cache(tokens, names=[HOOK, LATER], interventions=[vector])
    ref_logits, ref = model.run_with_cache(tokens, names=[HOOK, LATER], fwd_hooks=hand)
    assert logits is not None and torch.equal(logits, ref_logits)
    for name in (HOOK, LATER):
        assert torch.equal(cache[name], ref[name])
    # keep_error: the splice changes nothing downstream; the cache of the SAE helper agrees
    _, kept = model.run_with_cache(tokens, names=[LATER], interventions=[splice])
    _, sae_cache = S.run_with_cache_and_saes(model, tokens, sae, names=[LATER], keep_error=True)
    torch.testing.assert_close(kept[LATER], model.run_with_cache(tokens, names=[LATER])[1][LATER])
    assert torch.equal(kept[LATER], sae_cache[LATER])
    assert model.active_hooks() == []


@torch.no_grad()
def test_generation_with_interventions_equals_full_forwards(
    model: cs.HookedModel, vector: SteeringVector, sae: S.SAE
) -> None:
    """Cached generation steps see one position each: the vector's window and the splice's BOS still hold."""
    v = vector.with_(coefficient=6.0, start_pos=3)
    for interventions in ([v], [S.SAESplice(sae)], [v, S.SAESplice(sae)]):
        got = model.generate("abc", max_new_tokens=5, interventions=interventions)
        tokens = model.to_tokens("abc")
        for _ in range(5):
            logits = model(tokens, interventions=interventions)
            tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], 1)
        assert got.tokens.tolist() == tokens[0].tolist()
    assert model.generate("abc", 5, interventions=[v]).tokens.tolist() == (
        model.generate("abc", 5, hooks=steering_hooks(v, model)).tokens.tolist()
    )
    assert model.generate("abc", 5).tokens.tolist() != model.generate("abc", 5, interventions=[v]).tokens.tolist()
    assert model.active_hooks() == [] and model.pass_tokens is None


def test_hooks_are_gone_after_the_block_even_when_it_raises(model: cs.HookedModel, vector: SteeringVector) -> None:
    with pytest.raises(RuntimeError, match="inside"), model.apply(vector, S.SAESplice(_any_sae(model))):
        assert len(model.active_hooks()) == 2
        raise RuntimeError("inside")
    assert model.active_hooks() == []
    with pytest.raises(cs.ShapeError):  # a pass that fails half-way
        model(torch.tensor([[1, 10_000]]), interventions=[vector])
    assert model.active_hooks() == [] and model.pass_tokens is None


def _any_sae(model: cs.HookedModel, hook: str = HOOK) -> S.SAE:
    return S.create_sae(S.SAEConfig(architecture="relu", d_in=model.cfg.d_model, d_sae=8, hook_name=hook))


def test_a_wrong_model_intervention_is_refused_before_anything_is_attached(
    tiny: TinyModels, model: cs.HookedModel, vector: SteeringVector
) -> None:
    other = tiny.text(seed=1)
    foreign = SteeringVector(vector.vector, HOOK, model=model_fingerprint(other))
    missing = S.SAESplice(_any_sae(model, "blocks.7.hook_resid_post"))
    for bad, error in ((foreign, SteeringVectorMismatchError), (missing, cs.HookNameError)):
        with pytest.raises(error) as caught, model.apply(vector, bad):
            pass
        assert isinstance(caught.value, cs.CircuitscopeError)
        with pytest.raises(error):
            model(TEXT, interventions=[vector, bad])
        with pytest.raises(error):
            model.run_with_cache(TEXT, interventions=[bad])
        with pytest.raises(error):
            model.generate("ab", 2, interventions=[bad])
        assert model.active_hooks() == []
    with pytest.raises(cs.HookError, match="interventions are values"):
        model(TEXT, interventions=[steering_hooks(vector)])
    with pytest.raises(cs.HookError, match="interventions are values"), model.apply([vector]):  # type: ignore[arg-type]  # the bad input under test (a vector, not an intervention)
        pass
    assert model.active_hooks() == []


def test_a_function_keeps_nn_module_apply_meaning(model: cs.HookedModel) -> None:
    seen: list[torch.nn.Module] = []
    assert model.apply(seen.append) is model
    assert model.hf_model in seen and model.active_hooks() == []


def test_the_position_counter_continues_one_position_passes() -> None:
    counter = PositionCounter()
    assert [counter.offset(torch.zeros(1, n, 2)) for n in (4, 1, 1, 3, 1)] == [0, 4, 5, 0, 3]
