"""Real-model tier: the shipped facts and a causal trace of the Eiffel Tower on Gemma-3-270M."""

from __future__ import annotations

import pytest
import torch

import circuitscope as cs
from circuitscope.analysis.tracing import causal_trace
from circuitscope.core.replay import BlockReplay
from circuitscope.tasks.facts import load_facts

pytestmark = pytest.mark.real


def test_every_shipped_fact_is_predicted_correctly(gemma: cs.HookedModel) -> None:
    facts = load_facts()
    prompts = [f.prompt for f in facts]
    tokens = gemma.to_tokens(prompts)  # right-padded: padding cannot reach earlier positions of a causal model
    last = torch.tensor([len(gemma.to_tokens(p)[0]) - 1 for p in prompts])
    with torch.no_grad():
        top = BlockReplay(gemma, tokens).logits_at(last).argmax(-1)
    expected = [gemma.to_tokens(f.object, prepend_bos=False)[0, 0].item() for f in facts]
    wrong = [(f.prompt, gemma.to_string(int(t))) for f, t, e in zip(facts, top, expected, strict=True) if t != e]
    assert wrong == []


def test_eiffel_tower_trace(gemma: cs.HookedModel) -> None:
    result = causal_trace(gemma, "The Eiffel Tower is located in the city of", "The Eiffel Tower", n_samples=3)
    base = result.baseline
    assert base.tokens[1:4] == ["The", " Eiffel", " Tower"] and base.subject_range == (1, 4)
    assert base.target == " Paris" and base.clean_prob > 0.7
    assert base.corrupted_prob < base.clean_prob / 10  # noise on the subject removes the fact
    # the last state restored is the clean run, in a batch of noise samples: float32 rounding (measured 8.9e-7)
    assert float(result.restored[-1, -1]) == pytest.approx(base.clean_prob, abs=1e-5)
    effect = result.indirect_effect
    # what Gemma-3-270M shows (ROME's two sites): the subject at early/mid layers, the last token late
    subject_early = effect[:10, 1:4]
    assert float(subject_early.max()) > 0.2
    assert int(subject_early.max(0).values.argmax()) == 1  # on ' Eiffel', the subject's distinctive token
    assert float(effect[12:, -1].min()) > 0.4
    assert float(effect[:8, -1].max()) < 0.1  # the last token alone, early, cannot bring the fact back
    # the strongest restorations are those two sites
    flat = effect.flatten().topk(10).indices
    sites = {(int(i) // effect.shape[1], int(i) % effect.shape[1]) for i in flat}
    assert all((p == effect.shape[1] - 1 and layer >= 10) or (p == 2 and layer < 12) for layer, p in sites)
