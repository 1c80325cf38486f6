"""The cap on feature nodes: the most influential features' rows first, the others left out, as circuit-tracer."""

from __future__ import annotations

import torch

import circuitscope as cs
from circuitscope.graphs import AttributionGraph, GraphConfig, attribution_graph, graph_scores, prune_graph
from circuitscope.progress import SILENT
from circuitscope.transcoders.modules import TranscoderSet

Pair = tuple[cs.HookedModel, TranscoderSet]


def _graph(model: cs.HookedModel, tc: TranscoderSet, prompt: torch.Tensor, **config: object) -> AttributionGraph:
    return attribution_graph(model, tc, prompt, GraphConfig(**config), on_progress=SILENT)  # type: ignore[arg-type]


def _naive_selection(full: AttributionGraph, cap: int, batch: int, interval: int) -> set[tuple[int, int, int]]:
    """The features a capped graph computes, from the full graph: in rounds, the ``interval * batch`` features
    not yet computed of most influence on the logits through the rows known so far, by a dense inverse."""
    n, n_f = len(full.nodes), full.n_features
    weights = torch.zeros(n, dtype=torch.float64)
    weights[n - full.n_logits :] = full.logit_probabilities.double()
    a = full.adjacency.abs()
    a = a / a.sum(1, keepdim=True).clamp(min=1e-10)
    known = torch.zeros(n, dtype=torch.bool)
    known[n - full.n_logits :] = True
    chosen: list[int] = []
    while len(chosen) < cap:
        m = torch.where(known[:, None], a, torch.zeros_like(a))
        eye = torch.eye(n, dtype=torch.float64)
        influence = (weights @ (torch.linalg.inv(eye - m) - eye))[:n_f]
        order = torch.sort(influence, descending=True, stable=True).indices.tolist()
        fresh = [i for i in order if not known[i]][: min(interval * batch, cap - len(chosen))]
        chosen += fresh
        known[fresh] = True
    return {(full.nodes[i].layer, full.nodes[i].position, full.nodes[i].index) for i in chosen}


def test_the_capped_graph_is_the_full_graph_on_the_most_influential_features(
    relu64: Pair, noisy: TranscoderSet, prompt: torch.Tensor
) -> None:
    model, tc = relu64[0], noisy
    full = _graph(model, tc, prompt, batch_size=5, max_feature_nodes=None)
    cap, batch, interval = 23, 5, 2
    capped = _graph(model, tc, prompt, batch_size=batch, max_feature_nodes=cap, update_interval=interval)
    assert full.n_active_features == capped.n_active_features == full.n_features > 3 * cap
    assert capped.n_features == cap
    assert capped.stats is not None  # the logits', then rounds of 10, 10 and 3 features, 5 per backward pass
    assert capped.stats.backward_batches == -(-capped.n_logits // batch) + 2 + 2 + 1
    kept = {(n.layer, n.position, n.index) for n in capped.nodes if n.kind == "feature"}
    assert kept == _naive_selection(full, cap, batch, interval)
    # every kept row is the full graph's row on the kept sources; the features left out add up to `uncomputed`
    key = {(n.kind, n.layer, n.position, n.index): i for i, n in enumerate(full.nodes)}
    where = torch.tensor([key[n.kind, n.layer, n.position, n.index] for n in capped.nodes])
    torch.testing.assert_close(capped.adjacency, full.adjacency[where][:, where], rtol=0, atol=1e-12)
    left_out = torch.ones(full.n_features, dtype=torch.bool)
    left_out[where[: capped.n_features]] = False
    torch.testing.assert_close(capped.uncomputed, full.adjacency[where][:, : full.n_features][:, left_out].sum(1))
    torch.testing.assert_close(capped.inputs, full.inputs[where], rtol=0, atol=1e-12)
    rows = [i for i, n in enumerate(capped.nodes) if n.kind in ("feature", "logit")]
    conserved = capped.adjacency[rows].sum(1) + capped.biases[rows] + capped.uncomputed[rows]
    torch.testing.assert_close(conserved, capped.inputs[rows], rtol=0, atol=1e-10)
    assert float(capped.uncomputed.abs().max()) > 1e-3  # the cap did leave features out
    assert not full.uncomputed.any()


def test_pruning_and_scores_work_on_the_capped_graph(relu64: Pair, noisy: TranscoderSet, prompt: torch.Tensor) -> None:
    """The graph under the cap is a graph like any other: pruning keeps its thresholds, scores stay in (0, 1]
    (circuit-tracer computes both on the capped graph, the features left out being no nodes)."""
    model, tc = relu64[0], noisy
    capped = _graph(model, tc, prompt, batch_size=8, max_feature_nodes=16)
    pruned = prune_graph(capped, 0.5, 0.9)
    assert int(pruned.node_mask[: capped.n_features].sum()) < capped.n_features
    scores = graph_scores(capped)
    assert 0 < scores.replacement <= 1 and 0 < scores.completeness <= 1


def test_a_cap_at_or_above_the_active_features_is_every_feature(relu64: Pair, prompt: torch.Tensor) -> None:
    model, tc = relu64
    full = _graph(model, tc, prompt[:4], batch_size=16, max_feature_nodes=None)
    same = _graph(model, tc, prompt[:4], batch_size=16, max_feature_nodes=full.n_features)
    assert torch.equal(full.adjacency, same.adjacency) and full.nodes == same.nodes


def test_the_memory_estimate_counts_the_kept_features_and_the_computed_rows(relu64: Pair) -> None:
    from circuitscope.graphs import estimate_bytes

    cfg = relu64[0].cfg
    pos, features, logits, batch = 7, 90, 3, 4
    others = cfg.n_layers * pos + pos + logits
    forward = batch * cfg.n_layers * pos * (16 * cfg.d_model + 3 * cfg.d_mlp + cfg.n_heads * pos)
    decoders = features * cfg.d_model
    full = 4 * ((features + others) ** 2 + forward + decoders)
    capped = 4 * ((20 + others) ** 2 + (20 + logits) * (features + others) + forward + decoders)
    assert estimate_bytes(cfg, pos, features, logits, batch) == full
    assert estimate_bytes(cfg, pos, features, logits, batch, cap=features) == full
    assert estimate_bytes(cfg, pos, features, logits, batch, cap=20) == capped < full
