"""Head detector scores and causal traces are score grids: named axes, labels, the old attribute names kept."""

from __future__ import annotations

import itertools

import torch

import circuitscope as cs
from circuitscope.analysis._heads import previous_token_scores
from circuitscope.analysis._top import top_cells
from circuitscope.analysis.copying import CopyingConfig, ov_copying
from circuitscope.analysis.tracing import causal_trace, trace_heads, trace_neurons
from circuitscope.engine.grid import ScoreGrid
from circuitscope.toy.model import build_toy
from tests.analysis.test_tracing import PROMPT, SUBJECT
from tests.analysis.test_tracing import model as model  # the module-scoped tiny Llama fixture


def test_top_cells_equal_a_full_sort() -> None:
    scores = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    cells = sorted(itertools.product(range(5), range(7)), key=lambda c: -float(scores[c]))
    assert top_cells(scores, 4) == [(r, c, float(scores[r, c])) for r, c in cells[:4]]
    by_abs = sorted(itertools.product(range(5), range(7)), key=lambda c: -abs(float(scores[c])))
    assert top_cells(scores, 3, by_abs=True) == [(r, c, float(scores[r, c])) for r, c in by_abs[:3]]
    assert len(top_cells(scores, 100)) == 35  # never more than the cells there are


def test_head_scores_are_a_score_grid() -> None:
    toy = cs.HookedModel(build_toy(seed=0, d_vocab=40, n_ctx=32, d_model=24, n_layers=2, n_heads=3))
    result = previous_token_scores(toy, seq_len=8, batch=2)
    assert isinstance(result, ScoreGrid)
    assert result.axes == ("layer", "head") and result.metric == "previous_token"
    assert result.labels == {"layer": ["0", "1"], "head": ["0", "1", "2"]}
    assert result.scores.shape == (2, 3) and 0 <= float(result.scores[1, 2]) <= 1  # read as [layer, head]
    payload = result.to_json()
    assert payload["scores"] == result.scores.tolist() and payload["n_queries"] == result.n_queries
    assert result.to_dict() == {"name": "previous_token", "scores": result.scores.tolist(), "n_queries": 2 * 15}
    copying, _ = ov_copying(toy, CopyingConfig(n_tokens=10))
    assert copying.axes == ("layer", "head") and copying.to_json()["k"] == copying.k


def test_traces_are_score_grids_of_indirect_effects(model: cs.HookedModel) -> None:
    trace = causal_trace(model, PROMPT, SUBJECT, n_samples=2)
    base = trace.baseline
    assert isinstance(trace, ScoreGrid) and trace.axes == ("layer", "pos")
    assert trace.indirect_effect is trace.scores
    assert torch.equal(trace.scores, trace.restored - base.corrupted_prob)
    assert (trace.clean_value, trace.corrupted_value) == (base.clean_prob, base.corrupted_prob)
    assert len(trace.labels["pos"]) == len(base.tokens) and len(trace.labels["layer"]) == model.cfg.n_layers
    assert trace.to_json() == trace.to_dict()
    assert trace.to_dict()["indirect_effect"] == trace.scores.tolist()
    heads = trace_heads(model, PROMPT, SUBJECT, n_samples=2)
    assert heads.axes == ("layer", "head") and torch.equal(heads.indirect_effect, heads.restored - base.corrupted_prob)
    effect = heads.indirect_effect
    cells = sorted(itertools.product(*map(range, effect.shape)), key=lambda c: -float(effect[c]))
    assert heads.top(3) == [(la, h, float(effect[la, h])) for la, h in cells[:3]]
    neurons = trace_neurons(model, PROMPT, SUBJECT, layer=0, n_samples=2, neurons=[3, 1, 4])
    assert neurons.axes == ("neuron",) and neurons.labels == {"neuron": ["3", "1", "4"]}
    assert neurons.to_json()["top"][0]["neuron"] == neurons.top[0][0]
