"""Activation patching: block replay, clean-run recovery, refusals (batched = naive: core/test_families.py)."""

from __future__ import annotations

import pytest
import torch

from circuitscope import ShapeError
from circuitscope.analysis.patching import activation_patching
from circuitscope.core.replay import BlockReplay
from circuitscope.errors import UnsupportedModelError
from circuitscope.report.patching import plot_patching
from circuitscope.tasks import Task
from tests.tiny_models import TINY, VOCAB, TinyModels, random_task


def _task(n: int = 5, seq: int = 8) -> Task:
    return random_task(n, seq, seed=0, corrupt=(2, 3), answer_from_end=(1, 2, 1, 1, 3))


@pytest.mark.parametrize("family", [t.name for t in TINY if t.causal])
@torch.no_grad()
def test_replaying_blocks_equals_the_forward_pass(tiny: TinyModels, family: str) -> None:
    model = tiny.hooked(family)
    tokens = torch.randint(0, VOCAB, (3, 9), generator=torch.Generator().manual_seed(1))
    replay = BlockReplay(model, tokens)
    positions = torch.tensor([8, 5, 7])
    expected = model(tokens)[torch.arange(3), positions]
    for start in range(model.cfg.n_layers):
        logits = replay.run(start, replay.resid_pre[start].repeat(2, 1, 1), positions.repeat(2))
        # the replay runs a doubled batch and unembeds only the chosen rows: another GEMM shape, float32 rounding
        torch.testing.assert_close(logits, expected.repeat(2, 1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", [t.name for t in TINY if t.causal])
@torch.no_grad()
def test_prefix_reuse_equals_the_full_replay(tiny: TinyModels, family: str) -> None:
    """Blocks run on positions p.. only, the earlier positions' keys and values reused from the recording,
    give the full replay's logits and final stream; a model with state-space mixers refuses from_pos > 0."""
    model = tiny.hooked(family)
    tokens = torch.randint(0, VOCAB, (3, 9), generator=torch.Generator().manual_seed(1))
    replay = BlockReplay(model, tokens, keep_prefix=True)
    positions = torch.tensor([8, 5, 7]).repeat(2)
    if not replay.reuses_prefix:
        with pytest.raises(UnsupportedModelError, match="mixer"):
            replay.run(0, replay.resid_pre[0][:, 4:].repeat(2, 1, 1), positions, from_pos=4)
        return
    replay = BlockReplay(model, tokens)  # without keep_prefix: every position only
    with pytest.raises(ValueError, match="keep_prefix=True"):
        replay.run(0, replay.resid_pre[0][:, 4:].repeat(2, 1, 1), positions, from_pos=4)
    replay = BlockReplay(model, tokens, keep_prefix=True)
    edit = torch.randn(6, 9, model.cfg.d_model, generator=torch.Generator().manual_seed(2))
    for start in range(model.cfg.n_layers):
        resid = replay.resid_pre[start].repeat(2, 1, 1)
        resid[:, 4:] += edit[:, 4:]  # an edit at positions 4.. leaves positions 0..3 as recorded
        full = replay.run_resid(start, resid)
        for p in (1, 4):
            part = replay.run_resid(start, resid[:, p:].contiguous(), from_pos=p)
            # keys/values of the prefix concatenated with the suffix's vs one projection of all positions:
            # another GEMM shape, float32 rounding
            torch.testing.assert_close(part, full[:, p:], atol=1e-5, rtol=1e-5)
        logits = replay.run(start, resid[:, 4:].contiguous(), positions, from_pos=4)
        torch.testing.assert_close(logits, replay.run(start, resid, positions), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="from_pos=3 needs"):
        replay.run(0, replay.resid_pre[0], positions[:3], from_pos=3)


# batched patching = the naive loop, over every causal recipe: tests/core/test_families.py (the family contract)


def test_patching_everything_recovers_the_clean_run(tiny: TinyModels) -> None:
    """Patching the whole residual stream at layer 0 reproduces the clean run: score 1 at every position
    where the prompts differ is not required, but patching resid_pre at the only corrupted position is."""
    model = tiny.hooked("llama_gqa")
    task = _task()
    result = activation_patching(model, task, "resid_pre", layers=[0])
    assert result.scores.shape == (1, task.seq_len)
    # batched patched runs vs the unbatched clean/corrupted runs they normalise by: float32 rounding only
    torch.testing.assert_close(result.scores[0, 2], torch.tensor(1.0), atol=1e-5, rtol=0)  # the corrupted position
    torch.testing.assert_close(result.scores[0, 3:], torch.zeros(task.seq_len - 3), atol=1e-5, rtol=0)
    assert result.labels["pos"][0].endswith("·0") and len(result.labels["layer"]) == model.cfg.n_layers
    fig = plot_patching(result)
    assert fig is not None


def test_bad_patching_requests_are_refused(tiny: TinyModels) -> None:
    model = tiny.hooked("llama_gqa")
    with pytest.raises(ShapeError, match="unknown patching target"):
        activation_patching(model, _task(), "nonsense")  # type: ignore[arg-type]  # the bad input under test
    with pytest.raises(ShapeError, match="out of range"):
        activation_patching(model, _task(), "head_out", layers=[7])
