"""A steering sweep is a score grid over (layer, coefficient); its best cell is typed; progress is reported."""

from __future__ import annotations

import torch

import circuitscope as cs
from circuitscope.engine.grid import ScoreGrid
from circuitscope.steering import SteeringVector, SweepCell, actadd_vector, steering_sweep, target_logprob
from tests.tiny_models import TinyModels

NEUTRAL = ["a quiet walk by the river.", "numbers: 1 2 3 4."]


def _sweep(model: cs.HookedModel, calls: list[tuple[str, int, int]]):
    def make(layer: int) -> SteeringVector:
        return actadd_vector(model, "yes", "no", f"blocks.{layer}.hook_resid_pre")

    effect = target_logprob(["i feel", "you are"], ["l", "h"])
    return steering_sweep(
        model, make, [0, 1], [0.0, 4.0, 8.0], effect, NEUTRAL, on_progress=lambda *call: calls.append(call)
    )


def test_the_sweep_is_a_score_grid_with_its_old_names(tiny: TinyModels) -> None:
    calls: list[tuple[str, int, int]] = []
    sweep = _sweep(tiny.text(), calls)
    assert isinstance(sweep, ScoreGrid)
    assert sweep.axes == ("layer", "coefficient")
    assert sweep.labels == {"layer": ["0", "1"], "coefficient": ["0", "4", "8"]}
    assert sweep.effect is sweep.scores and sweep.clean_value is not None
    assert sweep.baseline_effect == sweep.clean_value
    assert sweep.effect_name == sweep.metric == "log P(l|h)"
    torch.testing.assert_close(sweep.effect_change, sweep.scores - sweep.clean_value, rtol=0, atol=0)
    # one unit a cell, announced at 0 first
    assert calls == [("steering sweep", done, 6) for done in range(7)]
    payload = sweep.to_json()
    assert payload["axes"] == ["layer", "coefficient"] and payload["damage"] == sweep.damage.tolist()


def test_best_is_the_naive_argmax_under_the_damage_budget(tiny: TinyModels) -> None:
    sweep = _sweep(tiny.text(), [])
    budget = float(sweep.damage.flatten().sort().values[3])  # some cells over it, some under
    cells = [
        (float(sweep.effect_change[i, j]), layer, c, float(sweep.damage[i, j]))
        for i, layer in enumerate(sweep.layers)
        for j, c in enumerate(sweep.coefficients)
        if float(sweep.damage[i, j]) <= budget
    ]
    change, layer, coefficient, damage = max(cells, key=lambda cell: cell[0])
    best = sweep.best(budget)
    assert best is not None and best == SweepCell(layer, coefficient, change, damage)
    assert sweep.best(float(sweep.damage.min()) - 1.0) is None
    under_half = sweep.best(0.5)
    assert sweep.to_dict()["best_under_0.5_nats_damage"] == (under_half.to_json() if under_half else None)
    assert best.to_json() == {"layer": layer, "coefficient": coefficient, "effect_change": change, "damage": damage}
