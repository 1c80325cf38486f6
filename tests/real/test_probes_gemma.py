"""Real tier: truth probes by layer on the embedded Gemma-3-270M, on the shipped capital statements.

Measured (docs/probes.md): "The capital of X is Y." is linearly decodable as true/false from the residual
stream at the final "." from layer 4 on (held-out 1.00 on layers 4-11), at chance at layer 0.
"""

from __future__ import annotations

import pytest

import circuitscope as cs
from circuitscope.probes import probe_sweep, true_false_statements

pytestmark = pytest.mark.real


def test_capital_truth_is_decodable_in_the_middle_layers_not_at_layer_0() -> None:
    model = cs.load_model(cs.DEFAULT_MODEL)
    # 36 true/false twins, each country once (so no test sentence repeats a training one)
    statements = [s for s in true_false_statements(72, seed=0) if s.topic == "capitals"]
    assert len(statements) == 72 and len({s.text for s in statements}) == 72
    hooks = ["blocks.0.hook_resid_post", "blocks.6.hook_resid_post", "blocks.9.hook_resid_post"]
    texts, labels = [s.text for s in statements], [s.label for s in statements]
    # twins on one side of the split: the probe is tested on countries it never saw
    sweep = probe_sweep(model, texts, labels, hooks, seed=0, groups=[s.pair_id for s in statements])
    acc = dict(zip(hooks, sweep.test_accuracy.tolist(), strict=True))
    assert acc["blocks.6.hook_resid_post"] >= 0.85 and acc["blocks.9.hook_resid_post"] >= 0.85, acc
    assert acc["blocks.0.hook_resid_post"] <= 0.75, acc
    assert model.active_hooks() == []
