"""PrefixReplay: one block at a time on the positions from ``first`` on, the earlier ones' keys and values the
recorded run's, equals the recorded run itself on every causal tiny family it supports; the others refuse."""

from __future__ import annotations

import re

import pytest
import torch

from circuitscope.core.hook_points import HookPoint
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
    replay = BlockReplay(model, tokens, keep_prefix=True)
    prefix = replay.prefix
    assert isinstance(prefix, PrefixReplay)
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
    prefix = BlockReplay(model, torch.randint(3, 90, (2, 10)), keep_prefix=True).prefix
    assert prefix is not None
    with pytest.raises(ValueError, match=r"first=4 needs positions 4\.\.9"):
        prefix.block(0, prefix.replay.resid_pre[0][:, 3:], 4, torch.tensor([0, 1]))


@pytest.mark.parametrize("family", ["gpt2", "llama_gqa", "gemma3"])  # learned positions; rotary + GQA; a window of 4
def test_patching_and_tracing_reuse_the_prefix_through_one_mechanism(tiny: TinyModels, family: str) -> None:
    """``BlockReplay.run(..., from_pos=p)`` (patching) is :meth:`PrefixReplay.block` stepped layer by layer
    (tracing), bit for bit, and both equal the full hooked forward pass of the edited run."""
    model = tiny.hooked(family)
    tokens = torch.randint(3, 90, (2, 10), generator=torch.Generator().manual_seed(0))
    replay = BlockReplay(model, tokens, keep_prefix=True)
    assert replay.prefix is not None and replay.reuses_prefix and replay.prefix_reason is None
    edit = torch.randn(4, 4, model.cfg.d_model, generator=torch.Generator().manual_seed(1))
    resid = replay.resid_pre[1].repeat(2, 1, 1)
    resid[:, 6:] += edit  # positions 6.. edited at layer 1, positions 0..5 as recorded
    with torch.no_grad():
        part = replay.run_resid(1, resid[:, 6:].contiguous(), from_pos=6)
        stepped = resid[:, 6:]
        for layer in range(1, model.cfg.n_layers):
            stepped = replay.prefix.block(layer, stepped, 6, torch.tensor([0, 1, 0, 1]))
        assert torch.equal(stepped, part)
        logits = replay.run(1, resid[:, 6:].contiguous(), torch.full((4,), 9), from_pos=6)
        full = model.run_with_hooks(tokens.repeat(2, 1), fwd_hooks=[("blocks.1.hook_resid_pre", lambda x, hook: resid)])
    # the suffix's keys and values projected apart from the prefix's: float32 rounding, as above
    torch.testing.assert_close(logits, full[:, 9], atol=1e-5, rtol=1e-5)


def test_a_refused_family_gets_its_reason(tiny: TinyModels) -> None:
    model = tiny.hooked("mamba")
    tokens = torch.randint(3, 90, (2, 10), generator=torch.Generator().manual_seed(0))
    replay = BlockReplay(model, tokens, keep_prefix=True)
    assert replay.prefix is not None and not replay.reuses_prefix
    assert replay.prefix_reason == replay.prefix.reason and "state-space mixer layers" in str(replay.prefix_reason)
    with pytest.raises(UnsupportedModelError, match=re.escape(str(replay.prefix_reason))):
        replay.run(0, replay.resid_pre[0][:, 4:], torch.full((2,), 9), from_pos=4)
    without = BlockReplay(model, tokens)  # no keys and values recorded: the reason says how to get them
    assert without.prefix is None and "keep_prefix=True" in str(without.prefix_reason)


@pytest.mark.parametrize("family", ["gpt2", "gemma3"])
def test_hooks_see_the_recorded_pass_once_and_their_edits_are_in_the_kept_keys_and_values(
    tiny: TinyModels, family: str
) -> None:
    """The keys and values are kept from the recorded pass itself: a hook attached then fires once per block with
    every position (no second, hidden pass), and an edit inside a block (here the values) is in what the suffix
    attends to, so running from a position equals the hooked forward pass."""
    model = tiny.hooked(family)
    tokens = torch.randint(3, 90, (2, 10), generator=torch.Generator().manual_seed(0))
    seen: list[tuple[str, int]] = []

    def count(x: torch.Tensor, hook: HookPoint) -> None:
        seen.append((hook.name, int(x.shape[1])))

    def halve(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        return x * 0.5

    hooks = [("blocks.*.attn.hook_v", halve), ("blocks.*.hook_mlp_out", count)]
    with model.hooks(hooks):
        replay = BlockReplay(model, tokens, keep_prefix=True)
        assert replay.reuses_prefix
        assert seen == [(f"blocks.{layer}.hook_mlp_out", 10) for layer in range(model.cfg.n_layers)]
        with torch.no_grad():
            logits = replay.run(1, replay.resid_pre[1][:, 6:].contiguous(), torch.full((2,), 9), from_pos=6)
        full = model(tokens)[:, 9]
    torch.testing.assert_close(logits, full, atol=1e-5, rtol=1e-5)  # float32 rounding, as above
