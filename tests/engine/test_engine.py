"""The shared mechanics: batch slices, the next-token loss, score grids."""

from __future__ import annotations

import json

import pytest
import torch

from circuitscope.core.replay import BlockReplay
from circuitscope.engine.batching import apply_in_batches, batch_slices, batched
from circuitscope.engine.grid import AXIS_NAMES, MetricGrid, ScoreGrid, component_labels
from circuitscope.engine.loss import next_token_loss, next_token_loss_from_resid, token_loss
from circuitscope.errors import ShapeError
from tests.tiny_models import VOCAB, TinyModels


def test_batch_slices_cover_the_range_in_order() -> None:
    assert batch_slices(7, 3) == [slice(0, 3), slice(3, 6), slice(6, 7)]
    assert batch_slices(6, 3, start=2) == [slice(2, 5), slice(5, 6)]
    assert batch_slices(0, 4) == [] and batch_slices(2, 10) == [slice(0, 2)]
    assert batched(list("abcde"), 2) == [["a", "b"], ["c", "d"], ["e"]]
    assert batched(range(3), 5) == [[0, 1, 2]]
    x = torch.arange(10.0)
    torch.testing.assert_close(apply_in_batches(lambda rows: rows * 2, x, 3), x * 2)
    with pytest.raises(ValueError, match="batch_size"):
        batch_slices(3, 0)


def test_next_token_loss_is_the_cross_entropy_of_the_next_token() -> None:
    gen = torch.Generator().manual_seed(0)
    logits, tokens = torch.randn(3, 6, 11, generator=gen), torch.randint(0, 11, (3, 6), generator=gen)
    expected = torch.nn.functional.cross_entropy(
        logits[:, 1:-1].reshape(-1, 11), tokens[:, 2:].reshape(-1), reduction="none"
    )
    per_token = next_token_loss(logits, tokens, 1, reduction="none")
    assert per_token.shape == (3, 4)
    assert torch.equal(per_token.flatten(), expected)  # the same kernel: equal to the bit
    torch.testing.assert_close(next_token_loss(logits, tokens, 1), expected.mean())
    torch.testing.assert_close(next_token_loss(logits, tokens, 1, reduction="sum"), expected.sum())
    mask = torch.rand(3, 6, generator=gen) > 0.4  # over the tokens: which are targets
    keep = mask[:, 2:]
    torch.testing.assert_close(next_token_loss(logits, tokens, 1, mask=mask, reduction="sum"), per_token[keep].sum())
    torch.testing.assert_close(next_token_loss(logits, tokens, 1, mask=mask), per_token[keep].mean())
    assert torch.equal(next_token_loss(logits, tokens, 1, mask=mask, reduction="none"), per_token * keep)
    assert torch.equal(
        next_token_loss(logits[0], tokens[0], reduction="none"), token_loss(logits[0, :-1], tokens[0, 1:])
    )
    with pytest.raises(ValueError, match="reduction"):
        token_loss(logits, tokens, reduction="max")  # type: ignore[arg-type]  # the bad input under test
    with pytest.raises(ShapeError):
        next_token_loss(logits, tokens[:, 1:])


@pytest.mark.parametrize("family", ["gpt2", "gemma2_softcap"])
def test_the_loss_from_the_final_residual_stream_equals_the_loss_of_the_logits(tiny: TinyModels, family: str) -> None:
    model = tiny.hooked(family)
    tokens = torch.randint(1, VOCAB, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        replay = BlockReplay(model, tokens)
        expected = next_token_loss(model(tokens), tokens, 2, reduction="none").mean(1)
        for chunk in (256, 5):  # all positions at once, and chunks that cut rows
            copies = next_token_loss_from_resid(model, replay.final_resid.repeat(2, 1, 1), tokens, 2, chunk_size=chunk)
            torch.testing.assert_close(copies, torch.cat([expected.mean(0, keepdim=True)] * 2), atol=1e-5, rtol=1e-5)


def test_a_score_grid_names_its_axes() -> None:
    scores = torch.tensor([[1.0, float("nan")], [3.0, 4.0], [5.0, 6.0]])
    grid = ScoreGrid(scores=scores, axes=("layer", "head"), labels={"layer": ["0", "1", "2"], "head": ["0", "1"]},
                     metric="logit_diff", clean_value=1.0, corrupted_value=None)  # fmt: skip
    assert grid.axis("head") == 1 and grid.scores.sum(grid.axis("layer")).shape == (2,)
    with pytest.raises(ShapeError, match="no 'pos' axis"):
        grid.axis("pos")
    payload = grid.to_json()
    assert payload["scores"][0] == [1.0, None] and payload["axes"] == ["layer", "head"]
    assert payload["corrupted_value"] is None
    json.dumps(payload, allow_nan=False)
    with pytest.raises(ShapeError, match="unknown axis"):
        ScoreGrid(scores=scores, axes=("layer", "row"), labels={}, metric="m", clean_value=None, corrupted_value=None)  # type: ignore[arg-type]  # the bad input under test (an unknown axis name)
    with pytest.raises(ShapeError, match="axis names"):
        ScoreGrid(scores=scores, axes=("layer",), labels={}, metric="m", clean_value=None, corrupted_value=None)
    metric = MetricGrid(scores=scores, raw=scores * 2, axes=("layer", "head"), labels={}, metric="m",
                        clean_value=1.0, corrupted_value=0.0)  # fmt: skip
    torch.testing.assert_close(metric.change, scores * 2 - 1.0, equal_nan=True)
    assert "raw" in metric.to_json()
    assert set(AXIS_NAMES) >= {"layer", "head", "kv_head", "pos", "neuron", "sender", "receiver", "prompt"}


def test_component_labels(tiny: TinyModels) -> None:
    model = tiny.hooked("llama_gqa")
    labels = component_labels(model, ("layer", "kv_head", "neuron"))
    assert labels["layer"] == [str(i) for i in range(model.cfg.n_layers)]
    assert len(labels["kv_head"]) == model.cfg.n_kv_heads and len(labels["neuron"]) == model.cfg.d_mlp
    assert component_labels(model, ("pos",), prompt=torch.tensor([1, 2, 3]))["pos"][2].endswith("·2")
    with pytest.raises(ShapeError):
        component_labels(model, ("pos",))
    with pytest.raises(ShapeError):
        component_labels(model, ("sender",))
