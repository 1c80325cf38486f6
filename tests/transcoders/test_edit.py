"""FeatureEdit: editing transcoder features of exact transcoders is editing the MLP's neurons."""

from __future__ import annotations

import pytest
import torch

from circuitscope.transcoders.edit import FeatureEdit
from circuitscope.transcoders.errors import TranscoderConfigError, TranscoderModelError
from tests.transcoders.conftest import exact_transcoders, relu_gpt2

PROMPT = torch.tensor([[5, 17, 3, 42, 9, 28]])


@pytest.mark.parametrize(("mode", "value"), [("zero", 0.0), ("scale", -2.0), ("set", 3.0)])
@torch.no_grad()
def test_an_edit_of_exact_transcoders_is_the_same_edit_of_the_mlp_neurons(mode: str, value: float) -> None:
    model = relu_gpt2()
    model.hf_model.double()
    tc = exact_transcoders(model).double()
    neurons, positions = [3, 40, 41], [1, 4]

    def edit_neurons(post: torch.Tensor, hook: object) -> torch.Tensor:
        post = post.clone()
        picked = post[:, positions][:, :, neurons]
        new = {"zero": 0 * picked, "scale": value * picked, "set": torch.full_like(picked, value)}[mode]
        post[:, positions[0], neurons] = new[:, 0]
        post[:, positions[1], neurons] = new[:, 1]
        return post

    expected = model.run_with_hooks(PROMPT, fwd_hooks=[("blocks.1.mlp.hook_post", edit_neurons)])
    edit = FeatureEdit(tc, 1, tuple(neurons), mode, value, positions=tuple(positions))  # type: ignore[arg-type]
    with model.apply(edit):
        edited = model(PROMPT)
    plain = model(PROMPT)
    assert float((edited - plain).abs().max()) > 1e-3
    torch.testing.assert_close(edited, expected, rtol=0, atol=1e-10)


@torch.no_grad()
def test_a_cross_layer_edit_writes_to_every_later_layer() -> None:
    model = relu_gpt2()
    tc = exact_transcoders(model, "cross_layer")
    for dec in tc.W_dec:
        dec[1:].normal_(generator=torch.Generator().manual_seed(0))  # the decoders to later layers
    edit = FeatureEdit(tc, 0, (7,), "set", 2.0, positions=(3,))
    names = [tc.output_hook(layer) for layer in tc.layers]
    assert [name for name, _ in edit.hooks(model)][1:] == names
    _, clean = model.run_with_cache(PROMPT, names=[*names, tc.input_hook(0)])
    _, edited = model.run_with_cache(PROMPT, names=names, interventions=[edit])
    act = tc.encode(0, clean[tc.input_hook(0)][0, 3])[7]
    expected = (2.0 - act) * tc.decoders(0)[0][1][7]
    change = edited[names[0]][0] - clean[names[0]][0]
    torch.testing.assert_close(change[3], expected.detach(), rtol=1e-5, atol=1e-6)
    assert float(change[[0, 1, 2, 4, 5]].abs().max()) == 0.0
    assert float((edited[names[2]] - clean[names[2]]).abs().max()) > 1e-4


def test_bad_edits_are_refused() -> None:
    model = relu_gpt2()
    tc = exact_transcoders(model)
    with pytest.raises(TranscoderConfigError, match="mode must be one of"):
        FeatureEdit(tc, 0, (1,), "double")  # type: ignore[arg-type]
    with pytest.raises(TranscoderConfigError, match="out of range"):
        FeatureEdit(tc, 0, (tc.cfg.d_sae,))
    with pytest.raises(TranscoderModelError, match="has no transcoder"):
        FeatureEdit(tc, 9, (1,))
    with (
        pytest.raises(TranscoderModelError, match="do not all exist"),
        model.apply(FeatureEdit(tc, 0, (1,), positions=(10,))),
    ):
        model(PROMPT)
