"""A tiny 2-layer attention-only model trained briefly on periodic random tokens grows an induction circuit.

Recipe (measured on 10 of 10 seeds at 500 steps, about 5 s each single-threaded): ``data="periodic"``
(a random block repeated to the end, period 4 .. 16 per sequence), 1 head per layer, d_model 32,
n_ctx 32, 32 tokens, no LayerNorm, Adam lr 1e-2 without weight decay or warm-up, batch 32. Across
those seeds: the layer-1 head's induction score 0.85 .. 0.91, every other head's at most 0.07; the
layer-0 head's previous-token score 0.49 .. 0.57; K-composition between them 0.32 .. 0.39 against a
random baseline of 0.18; loss on the repeated half 0.58 .. 0.84 against 4.2 .. 4.6 on the first half.
The thresholds below leave a wide margin around those numbers.

With two or more heads per layer every layer-1 head becomes an induction head (nothing else in this
data is worth attending to), so one head standing above all the rest needs one head per layer.
"""

from __future__ import annotations

import math

import pytest
import torch

from circuitscope.analysis._heads import induction_scores, previous_token_scores, repeated_random_tokens
from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.induction import InductionConfig, periodic_batch, train_induction_model

VOCAB, CTX = 32, 32


def test_periodic_batch_repeats_a_block_with_a_random_period() -> None:
    tokens = periodic_batch(torch.Generator().manual_seed(0), 64, CTX, VOCAB)
    assert tokens.shape == (64, CTX) and int(tokens.min()) >= 0 and int(tokens.max()) < VOCAB
    periods = []
    for row in tokens:
        # the smallest p with row[i] == row[i - p] everywhere (random blocks of 4+ tokens rarely repeat sooner)
        period = next(p for p in range(1, CTX) if torch.equal(row[p:], row[:-p]))
        periods.append(period)
    assert min(periods) >= 4 and max(periods) <= CTX // 2
    assert len(set(periods)) >= 8  # the period varies, so positions alone cannot find the copy
    with pytest.raises(LabConfigError, match="n_ctx"):
        periodic_batch(torch.Generator().manual_seed(0), 2, 6, VOCAB)


def test_two_layer_attention_only_model_grows_an_induction_circuit() -> None:
    # the recipe of InductionConfig.data's docstring (2 layers, batch 32 and seed 0 are the defaults): periodic
    # data, no LayerNorm, no weight decay, lr 1e-2
    recipe = {"data": "periodic", "layer_norm": False, "weight_decay": 0.0, "lr": 1e-2, "warmup_steps": 0}
    config = InductionConfig(n_heads=1, d_model=32, n_ctx=CTX, d_vocab=VOCAB, steps=500, checkpoint_every=500, **recipe)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = train_induction_model(config, measure_ablation=False, threads=1)
        model = run.hooked
        assert model is not None and run.composition is not None
        # fresh [r r] probes, r of 16 random tokens (not a training batch)
        probe = repeated_random_tokens(VOCAB, CTX // 2, 32, torch.Generator().manual_seed(1234))
        induction = induction_scores(model, probe).scores  # [layer, head]
        previous = previous_token_scores(model, probe).scores
        with torch.no_grad():
            logits = model(probe)
        per_pos = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), probe[:, 1:], reduction="none"
        ).mean(0)
    finally:
        torch.set_num_threads(previous_threads)

    # (a) one layer-1 head is an induction head, far above every other head
    ind_head = int(induction[1].argmax())
    best = float(induction[1, ind_head])
    others = torch.cat([induction[0], induction[1][torch.arange(config.n_heads) != ind_head]])
    assert best > 0.6, induction
    assert float(others.max()) < 0.2 and best - float(others.max()) > 0.4, induction
    # the untrained model attends nearly uniformly: the score grew during training
    assert run.induction[0][1][ind_head] < 0.25 < run.induction[-1][1][ind_head]

    # (b) a layer-0 head attends to the previous token (uniform attention would give about 0.1)
    prev_head = int(previous[0].argmax())
    assert float(previous[0, prev_head]) > 0.35, previous

    # (c) the induction head's keys read the previous-token head's output: K-composition above chance
    k_comp = float(run.composition.k[0, prev_head, 1, ind_head])
    assert k_comp > 1.3 * run.composition.baseline["k"], (k_comp, run.composition.baseline)

    # (d) the repeated half is predicted in context; the first half (fresh random tokens) is not
    half = CTX // 2
    first, second = float(per_pos[: half - 1].mean()), float(per_pos[half:].mean())
    assert first > 0.9 * math.log(VOCAB), (first, second)
    assert second < 0.4 * first and second < 0.5 * math.log(VOCAB), (first, second)
