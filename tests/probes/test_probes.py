"""Probes recover planted directions; CCS separates synthetic contrast pairs; the statement set is well formed."""

from __future__ import annotations

import pytest
import torch

from circuitscope.probes import (
    activations_at_position,
    contrast_pairs,
    probe_sweep,
    train_ccs,
    train_probe,
    true_false_statements,
)
from circuitscope.probes.logistic import split_indices
from circuitscope.report.probes import plot_probe_sweep
from tests.tiny_models import TinyModels


def _planted(n: int = 400, d: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(d, generator=g)
    direction /= direction.norm()
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, d, generator=g) + (2 * y[:, None] - 1) * 2.0 * direction
    return x, y, direction


def test_probe_recovers_a_planted_direction() -> None:
    x, y, direction = _planted()
    probe = train_probe(x, y, l2=1e-3)
    assert probe.test_accuracy > 0.93 and probe.n_test == 100
    assert float(probe.direction @ direction) > 0.8
    assert probe.accuracy(x, y) > 0.9


def test_probe_on_noise_is_at_chance() -> None:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(400, 24, generator=g), torch.randint(0, 2, (400,), generator=g)
    assert 0.3 < train_probe(x, y).test_accuracy < 0.7


@pytest.mark.slow
def test_ccs_separates_synthetic_contrast_pairs() -> None:
    g = torch.Generator().manual_seed(0)
    n, d = 300, 16
    truth = torch.randint(0, 2, (n,), generator=g)
    t_dir = torch.zeros(d)
    t_dir[0] = 1.0
    topic = torch.randn(n, d, generator=g)  # shared by both sides of a pair
    sign = (2 * truth - 1).float()[:, None]
    x_pos = topic + 2.0 * sign * t_dir + 0.3 * torch.randn(n, d, generator=g)
    x_neg = topic - 2.0 * sign * t_dir + 0.3 * torch.randn(n, d, generator=g)
    ccs = train_ccs(x_pos, x_neg, n_tries=3, epochs=300, lr=1e-2)
    assert ccs.accuracy(x_pos, x_neg, truth) > 0.95
    assert abs(float(ccs.weight[0])) / float(ccs.weight.norm()) > 0.8


def test_statements_are_balanced_twins_of_three_topics() -> None:
    st = true_false_statements(n_per_topic=20, seed=3)
    assert len(st) == 60 and sum(s.label for s in st) == 30
    assert {s.topic for s in st} == {"capitals", "arithmetic", "comparison"}
    by_pair: dict[int, list] = {}
    for s in st:
        by_pair.setdefault(s.pair_id, []).append(s)
    assert all(sorted(x.label for x in v) == [0, 1] and v[0].text != v[1].text for v in by_pair.values())
    for s in st:
        if s.topic == "arithmetic":
            lhs, rhs = s.text.rstrip(".").split(" = ")
            a, op, b = lhs.split()
            value = int(a) + int(b) if op == "+" else int(a) - int(b)
            assert (value == int(rhs)) == bool(s.label)
        if s.topic == "comparison":
            a, _, word, _, b = s.text.rstrip(".").split()
            assert ((int(a) > int(b)) == (word == "larger")) == bool(s.label)
    assert true_false_statements(20, 3) == st
    pos, neg, labels = contrast_pairs(st)
    assert pos[0].endswith("This is true.") and neg[0].endswith("This is false.") and len(labels) == 60


def test_statements_never_repeat_and_too_many_capitals_is_refused() -> None:
    st = true_false_statements(72, seed=1)
    assert len({s.text for s in st}) == len(st) == 216
    with pytest.raises(ValueError, match="n_per_topic <= 72"):
        true_false_statements(74)


def test_group_split_keeps_twins_together_and_holds_out_the_asked_fraction() -> None:
    st = true_false_statements(40, seed=2)
    groups = [s.pair_id for s in st]
    labels = torch.tensor([s.label for s in st])
    train, test = split_indices(len(st), 0.25, 0, labels, groups)
    assert sorted(train + test) == list(range(len(st)))
    assert {groups[i] for i in train}.isdisjoint({groups[i] for i in test})
    assert len(test) == 30  # 15 whole pairs: a quarter of 120
    assert split_indices(len(st), 0.25, 0, labels, groups) == (train, test)
    with pytest.raises(ValueError, match="group keys"):
        split_indices(4, 0.25, 0, None, [0, 1])


def test_activations_at_position_matches_single_runs_and_sweep_runs(tiny: TinyModels) -> None:
    model = tiny.text()
    texts = ["a", "hello there", "xyz!"]
    hook = "blocks.0.hook_resid_post"
    batched = activations_at_position(model, texts, hook, -1, batch_size=3)[hook]
    for i, t in enumerate(texts):
        _, cache = model.run_with_cache(t, names=hook)
        # a padded batch of 3 vs the text alone: another GEMM shape, float32 rounding (measured 1.5e-8 on ~0.2)
        torch.testing.assert_close(batched[i], cache[hook][0, -1], rtol=1e-5, atol=1e-5)
    st = true_false_statements(10)
    sweep = probe_sweep(model, [s.text for s in st], [s.label for s in st], [hook, "blocks.1.hook_resid_post"])
    assert sweep.test_accuracy.shape == (2,) and sweep.n == 30
    assert plot_probe_sweep(sweep).data
