"""PrefixReplay: one block at a time on the positions from ``first`` on, the earlier ones' keys and values the
recorded run's, equals the recorded run itself on every causal tiny family it supports; the others refuse."""

from __future__ import annotations

import pytest
import torch

from circuitscope.core.prefix_kv import PrefixReplay
from circuitscope.core.replay import BlockReplay
from circuitscope.errors import UnsupportedModelError
from tests.tiny_models import TINY, TinyModels

MIXERS = {"mamba", "mamba2", "bamba"}  # state-space layers: no key/value cache to reuse
CAUSAL = [t.name for t in TINY if t.causal]


@pytest.mark.parametrize("family", CAUSAL)
def test_blocks_from_a_position_reproduce_the_recorded_run(tiny: TinyModels, family: str) -> None:
    model = tiny.hooked(family)
    tokens = torch.randint(3, 90, (2, 10), generator=torch.Generator().manual_seed(0))  # > the sliding windows of 4
    replay = BlockReplay(model, tokens)
    prefix = PrefixReplay(replay)
    n = model.cfg.n_layers
    source = torch.tensor([1, 0, 1])  # rows copying recorded rows 1, 0, 1
    assert prefix.supported == (family not in MIXERS), prefix.reason
    firsts = [0, 3, 9] if prefix.supported else [0]
    with torch.no_grad():
        for first in firsts:
            hidden = replay.resid_pre[0][source, first:]
            for layer in range(n):  # the whole stack, each block's output checked against the recording
                hidden = prefix.block(layer, hidden, first, source)
                recorded = replay.resid_pre[layer + 1] if layer + 1 < n else replay.final_resid
                # cut calls reorder no sum but run other matrix shapes: float32 rounding (measured <= 3e-8)
                torch.testing.assert_close(hidden, recorded[source, first:], atol=1e-5, rtol=1e-5)
            logits = prefix.logits_last(hidden)
            full = replay.logits_at(torch.full((2,), 9))
            torch.testing.assert_close(logits, full[source], atol=1e-5, rtol=1e-5)
    if not prefix.supported:
        with pytest.raises(UnsupportedModelError, match="cannot skip positions"):
            prefix.block(0, replay.resid_pre[0][source, 3:], 3, source)


def test_a_bad_cut_is_refused(tiny: TinyModels) -> None:
    model = tiny.hooked("llama_gqa")
    prefix = PrefixReplay(BlockReplay(model, torch.randint(3, 90, (2, 10))))
    with pytest.raises(ValueError, match=r"first=4 needs positions 4\.\.9"):
        prefix.block(0, prefix.replay.resid_pre[0][:, 3:], 4, torch.tensor([0, 1]))
