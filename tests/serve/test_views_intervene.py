"""The intervene view equals hand-written hooks that do the same thing, and refuses bad interventions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

import circuitscope as cs
from circuitscope.serve.errors import ServeInputError
from circuitscope.serve.views import InterventionSpec, intervene_view

PROMPT = "the cat sat on the mat"
SOURCE = "a big dog ran to a box"  # the same 22 characters: the same token count


@pytest.fixture(autouse=True)
def _no_leaked_hooks(text_model: cs.HookedModel) -> Iterator[None]:
    yield
    assert text_model.active_hooks() == []


def _last_logits(model: cs.HookedModel, hooks: list) -> torch.Tensor:
    with torch.no_grad():
        return model.run_with_hooks(model.to_tokens(PROMPT), fwd_hooks=hooks)[0, -1].float()


def _spec(model: cs.HookedModel, **fields: object) -> InterventionSpec:
    return InterventionSpec.from_json(fields, model)


def test_a_zero_ablated_head_equals_a_hook_that_zeroes_it(text_model: cs.HookedModel) -> None:
    def zero(z: torch.Tensor, hook: object) -> torch.Tensor:
        z = z.clone()
        z[:, :, 2] = 0
        return z

    expected = _last_logits(text_model, [("blocks.1.attn.hook_z", zero)])
    view = intervene_view(
        text_model, PROMPT, [_spec(text_model, kind="zero", component="head", layer=1, head=2)], top_k=52
    )
    by_id = {p.id: p.logit for p in view.predictions}
    assert [by_id[i] for i in range(52)] == expected.tolist()
    clean = _last_logits(text_model, [])
    assert {p.id: p.logit for p in view.clean_predictions} == dict(enumerate(clean.tolist()))
    assert view.logit_diff is None and view.to_json()["interventions"][0]["label"] == "L1H2 zero"


def test_patching_a_head_from_the_same_prompt_changes_nothing(text_model: cs.HookedModel) -> None:
    specs = [_spec(text_model, kind="patch", component="head", layer=0, head=1, source=PROMPT)]
    view = intervene_view(text_model, PROMPT, specs, answer="a", wrong="e")
    assert view.predictions == view.clean_predictions
    assert view.logit_diff == view.clean_logit_diff
    assert view.logit_diff is not None


def test_a_patch_and_a_mean_ablation_together_equal_hand_written_hooks(text_model: cs.HookedModel) -> None:
    with torch.no_grad():
        _, cache = text_model.run_with_cache(text_model.to_tokens(SOURCE), names="blocks.0.attn.hook_z")
        _, own = text_model.run_with_cache(text_model.to_tokens(PROMPT), names="blocks.1.hook_mlp_out")
    source_z = cache["blocks.0.attn.hook_z"]
    clean_mean = own["blocks.1.hook_mlp_out"].mean(1, keepdim=True)  # over the prompt's own positions, clean run

    def patch(z: torch.Tensor, hook: object) -> torch.Tensor:
        z = z.clone()
        z[:, :, 3] = source_z[:, :, 3]
        return z

    def mean(out: torch.Tensor, hook: object) -> torch.Tensor:
        return clean_mean.expand_as(out).clone()

    expected = _last_logits(text_model, [("blocks.0.attn.hook_z", patch), ("blocks.1.hook_mlp_out", mean)])
    specs = [
        _spec(text_model, kind="patch", component="head", layer=0, head=3, source=SOURCE),
        _spec(text_model, kind="mean", component="mlp", layer=1),
    ]
    view = intervene_view(text_model, PROMPT, specs, answer="a", wrong="e", top_k=3)
    a, e = text_model.to_single_token("a"), text_model.to_single_token("e")
    assert view.logit_diff == pytest.approx(float(expected[a] - expected[e]), abs=1e-5)
    assert [p.id for p in view.predictions] == expected.argsort(descending=True)[:3].tolist()
    assert [s.label for s in view.interventions] == ["L0H3 patch", "L1 MLP mean"]
    assert view.logit_diff != view.clean_logit_diff


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"kind": "zero", "component": "head", "layer": 2, "head": 0},
            "layer 2 is out of range: this model has layers 0-1",
        ),
        (
            {"kind": "zero", "component": "head", "layer": 0, "head": 4},
            "head 4 is out of range: this model has heads 0-3",
        ),
        ({"kind": "zero", "component": "head", "layer": -1, "head": 0}, "layer -1 is out of range"),
        ({"kind": "zero", "component": "head", "layer": "0", "head": 0}, "layer must be a whole number"),
        ({"kind": "zero", "component": "mlp", "layer": 0, "head": 1}, "an MLP intervention none"),
        ({"kind": "zero", "component": "head", "layer": 0}, "a head intervention needs a head index"),
        ({"kind": "patch", "component": "mlp", "layer": 0}, "a patch needs a source prompt"),
        ({"kind": "zero", "component": "mlp", "layer": 0, "source": SOURCE}, "zero and mean take none"),
        ({"kind": "resample", "component": "mlp", "layer": 0}, "unknown intervention kind 'resample'"),
        ({"kind": "zero", "component": "neuron", "layer": 0}, "unknown intervention component 'neuron'"),
        ({"kind": "zero", "component": "mlp", "layer": 0, "heads": [1]}, r"unknown intervention fields \['heads'\]"),
        ({"kind": "zero", "component": "mlp"}, r"lacks \['layer'\]"),
    ],
)
def test_bad_interventions_are_refused(text_model: cs.HookedModel, fields: dict, message: str) -> None:
    with pytest.raises(ServeInputError, match=message):
        InterventionSpec.from_json(fields, text_model)


def test_a_patch_source_of_another_length_is_refused(text_model: cs.HookedModel) -> None:
    spec = _spec(text_model, kind="patch", component="mlp", layer=0, source="a dog")
    with pytest.raises(ServeInputError, match=r"is 6 tokens long and the prompt 23: .* make them the same length"):
        intervene_view(text_model, PROMPT, [spec])
    with pytest.raises(ServeInputError, match="no interventions given"):
        intervene_view(text_model, PROMPT, [])
    with pytest.raises(ServeInputError, match="is a JSON object"):
        InterventionSpec.from_json(["zero"], text_model)
