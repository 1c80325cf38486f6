"""Attribution graphs: the direct effect of every source on every target in the local replacement model.

The rows (each target's edges from every source) come from batched backward passes (graphs/rows.py). Which
rows are computed, as circuit-tracer's ``attribute`` does:

- **every active feature is a node** (``max_feature_nodes`` at ``None`` or at least the active features): the
  rows of all targets, features then logits, ``batch_size`` per backward pass, in node order;
- **under the cap**: the logit rows first; then, in rounds of ``update_interval`` backward passes, the
  features not yet computed that are the most influential on the logits, the influence estimated through the
  rows computed so far (prune.py :func:`~circuitscope.graphs.prune.partial_influence`: a feature's paths to
  the logits through features not yet computed are not counted yet), until ``max_feature_nodes`` features.
  Only those features become nodes; the others' edges are left out of the graph (circuit-tracer drops their
  columns), their total contribution to each target's input kept in ``uncomputed``. Within a round the
  features are computed by layer (the set is the same), so that a backward pass runs through fewer layers.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch

from circuitscope.engine.batching import batch_slices
from circuitscope.graphs.budget import GraphSize, check_budget
from circuitscope.graphs.graph import AttributionGraph, GraphConfig, GraphNode, GraphStats
from circuitscope.graphs.prune import normalized_rows, partial_influence
from circuitscope.graphs.replacement import LocalReplacement, Sources, check_replaceable, local_replacement
from circuitscope.graphs.rows import RowReader, Targets, graph_targets
from circuitscope.progress import OnProgress, track

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel
    from circuitscope.transcoders.modules import TranscoderSet

__all__ = ["attribution_graph", "logit_targets"]


def logit_targets(probs: torch.Tensor, config: GraphConfig, forced: int | None = None) -> list[int]:
    """The logit nodes' tokens: the most likely ones until ``logit_probability`` of the mass, at most
    ``max_logits`` (``forced``, the target token, first)."""
    order = torch.argsort(probs, descending=True)
    mass = torch.cumsum(probs[order], 0)
    k = int(torch.searchsorted(mass, torch.tensor(config.logit_probability, dtype=mass.dtype))) + 1
    tokens = [int(t) for t in order[: min(k, config.max_logits)]]
    if forced is None:
        return tokens
    return [forced, *[t for t in tokens if t != forced]][: config.max_logits]


def _nodes(
    model: HookedModel, repl: LocalReplacement, kept: torch.Tensor, logits: list[int], probs: torch.Tensor
) -> list[GraphNode]:
    f = repl.features
    n_layers, n_pos = repl.errors.shape[0], int(repl.tokens.shape[0])
    nodes = [
        GraphNode("feature", layer, pos, idx, activation=act)
        for layer, pos, idx, act in zip(
            f.layer[kept].tolist(), f.position[kept].tolist(), f.index[kept].tolist(), f.activation[kept].tolist(),
            strict=True,
        )
    ]  # fmt: skip
    nodes += [GraphNode("error", layer, pos, -1) for layer in range(n_layers) for pos in range(n_pos)]
    text = _token_texts(model, repl.tokens.tolist())
    nodes += [GraphNode("embedding", -1, pos, int(t), token=text[pos]) for pos, t in enumerate(repl.tokens.tolist())]
    nodes += [
        GraphNode("logit", n_layers, n_pos - 1, t, probability=float(probs[t]), token=_token_texts(model, [t])[0])
        for t in logits
    ]
    return nodes


def _token_texts(model: HookedModel, ids: list[int]) -> list[str]:
    if model.tokenizer is None:
        return [str(i) for i in ids]
    return [model.tokenizer.decode([i]) for i in ids]


def _prompt_tokens(model: HookedModel, prompt: str | torch.Tensor) -> tuple[str, torch.Tensor]:
    if isinstance(prompt, str):
        return prompt, model.to_tokens(prompt)[0]
    tokens = prompt.flatten().long()
    text = model.tokenizer.decode(tokens.tolist()) if model.tokenizer is not None else ""
    return text, tokens


class _Rows:
    """The computed rows [m, sources], whose target each is (ids among the :class:`Targets`), and the time."""

    def __init__(self, capacity: int, n_sources: int, dtype: torch.dtype) -> None:
        self.values = torch.zeros(capacity, n_sources, dtype=dtype)
        self.ids = torch.zeros(capacity, dtype=torch.long)
        self.filled = 0
        self.batches = 0
        self.seconds = 0.0

    def add(self, reader: RowReader, ids: torch.Tensor) -> None:
        began = time.perf_counter()
        end = self.filled + len(ids)
        self.values[self.filled : end, : reader.n_sources] = reader.rows(ids).to(self.values.dtype)
        self.ids[self.filled : end] = ids
        self.filled, self.batches = end, self.batches + 1
        self.seconds += time.perf_counter() - began


def _every_row(reader: RowReader, on_progress: OnProgress | None) -> _Rows:
    """Every target's row, ``batch`` per backward pass in node order."""
    n, dtype = len(reader.targets), torch.promote_types(reader.writes.embed.dtype, torch.float32)
    rows = _Rows(n, reader.n_sources, dtype)
    for piece in track(batch_slices(n, reader.batch), "attribution graph: backward passes", on_progress):
        rows.add(reader, torch.arange(n)[piece])
    return rows


def _ranked_rows(
    reader: RowReader, n_features: int, probs: torch.Tensor, cap: int, interval: int, on_progress: OnProgress | None
) -> tuple[_Rows, float]:
    """The logits' rows, then the rows of the ``cap`` features most influential on the logits, re-estimated
    every ``interval`` backward passes; and the seconds the estimates took."""
    n_logits, batch = len(probs), reader.batch
    n_nodes = reader.n_sources + n_logits
    dtype = torch.promote_types(reader.writes.embed.dtype, torch.float32)
    rows = _Rows(n_logits + cap, n_nodes, dtype)
    normalized = torch.zeros_like(rows.values)  # each row divided by its absolute sum, once
    logit_ids = torch.arange(n_features, n_features + n_logits)
    weights = torch.zeros(n_nodes, dtype=dtype)
    weights[reader.n_sources :] = probs.to(dtype)
    # the node of each target: features are nodes 0.., logits come after the errors and embeddings
    node_of = torch.cat([torch.arange(n_features), torch.arange(reader.n_sources, n_nodes)])
    visited = torch.zeros(n_features, dtype=torch.bool)
    ranking = 0.0
    for piece in batch_slices(n_logits, batch):
        rows.add(reader, logit_ids[piece])
    total = -(-cap // batch) + rows.batches
    done = 0
    while rows.filled - n_logits < cap:
        began = time.perf_counter()
        normalized[done : rows.filled] = normalized_rows(rows.values[done : rows.filled])
        done = rows.filled
        known = node_of[rows.ids[:done]]
        influence = partial_influence(normalized[:done], known, weights, normalized=True)[:n_features]
        order = torch.sort(influence, descending=True, stable=True).indices
        pending = order[~visited[order]][: min(interval * batch, cap - (rows.filled - n_logits))]
        pending = pending[torch.sort(reader.targets.layer[pending], stable=True).indices]
        ranking += time.perf_counter() - began
        for piece in batch_slices(len(pending), batch):
            rows.add(reader, pending[piece])
            visited[pending[piece]] = True
            if on_progress is not None:
                on_progress("attribution graph: backward passes", rows.batches, total)
    return rows, ranking


def _adjacency(
    rows: _Rows, n_features: int, n_sources: int, n_logits: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The square adjacency on the kept features (those with a row) and the other nodes, the part of each
    target's input from the features left out, and the kept targets' ids (node ``i`` is target ``ids[i]`` for
    the features, the logits at the end)."""
    ids = rows.ids[: rows.filled]
    order = torch.argsort(ids)  # the features first (their ids come before the logits'), each ascending
    values = rows.values[: rows.filled, :n_sources]
    if not torch.equal(order, torch.arange(len(ids))):
        values, ids = values[order], ids[order]
    n_kept = len(ids) - n_logits
    n = n_sources - n_features + len(ids)
    adjacency = torch.zeros(n, n, dtype=values.dtype)
    targets = torch.cat([torch.arange(n_kept), torch.arange(n - n_logits, n)])
    uncomputed = torch.zeros(n, dtype=values.dtype)
    if n_kept == n_features:
        adjacency[targets, :n_sources] = values
        return adjacency, uncomputed, ids
    left_out = torch.ones(n_features, dtype=torch.bool)
    left_out[ids[:n_kept]] = False
    columns = torch.cat([ids[:n_kept], torch.arange(n_features, n_sources)])
    adjacency[targets, : len(columns)] = values[:, columns]
    uncomputed[targets] = values[:, :n_features][:, left_out].sum(1)
    return adjacency, uncomputed, ids


def attribution_graph(
    model: HookedModel,
    transcoders: TranscoderSet,
    prompt: str | torch.Tensor,
    config: GraphConfig | None = None,
    *,
    transcoders_name: str = "",
    on_progress: OnProgress | None = None,
) -> AttributionGraph:
    """The attribution graph of ``prompt`` (text, or a 1-d tensor of token ids) for the next token.

    Refused before any work: a model the replacement cannot freeze, transcoders of another model or layer set,
    a ``config.target`` that is not one token. Refused after the one real forward pass that counts the active
    features, before the backward passes: a prompt whose graph would not fit ``config.memory_gb``
    (graphs/budget.py; the message says how long a prompt fits).
    """
    cfg = config or GraphConfig()
    check_replaceable(model, transcoders)
    forced = model.to_single_token(cfg.target) if cfg.target is not None else None
    text, tokens = _prompt_tokens(model, prompt)
    start = time.perf_counter()
    repl = local_replacement(model, transcoders, tokens.to(model.device))
    probs = torch.softmax(repl.logits[-1].double(), -1)
    logits = logit_targets(probs, cfg, forced)
    n_f = len(repl.features)
    cap = n_f if cfg.max_feature_nodes is None else min(cfg.max_feature_nodes, n_f)
    writes = max(len(transcoders.decoders(layer)) for layer in transcoders.layers)
    size = GraphSize(model.cfg, len(tokens), n_f, len(logits), cfg.batch_size, writes, cfg.max_feature_nodes)
    check_budget(size, cfg.memory_gb)
    targets = graph_targets(repl, transcoders, model, logits)
    reader = RowReader(model, transcoders, repl, targets, min(cfg.batch_size, len(targets)))
    forward = time.perf_counter() - start
    if cap == n_f:
        rows, ranking = _every_row(reader, on_progress), 0.0
    else:
        logit_probs = probs[logits]
        rows, ranking = _ranked_rows(reader, n_f, logit_probs, cap, cfg.update_interval, on_progress)
    n_sources = reader.n_sources
    del reader
    adjacency, uncomputed, target_ids = _adjacency(rows, n_f, n_sources, len(logits))
    n = len(adjacency)
    node_rows = torch.cat([torch.arange(len(target_ids) - len(logits)), torch.arange(n - len(logits), n)])
    inputs, biases = _inputs_and_biases(model, transcoders, repl, targets, n, node_rows, target_ids)
    per_batch = rows.seconds / max(rows.batches, 1)
    stats = GraphStats(rows.batches, forward, per_batch, ranking, time.perf_counter() - start)
    kept = target_ids[target_ids < n_f]
    return AttributionGraph(
        prompt=text,
        tokens=repl.tokens.tolist(),
        str_tokens=_token_texts(model, repl.tokens.tolist()),
        nodes=_nodes(model, repl, kept, logits, probs),
        adjacency=adjacency,
        inputs=inputs,
        biases=biases,
        uncomputed=uncomputed,
        n_active_features=n_f,
        n_layers=model.cfg.n_layers,
        d_sae=transcoders.cfg.d_sae,
        model_name=getattr(model.hf_model.config, "_name_or_path", "") or model.cfg.family,
        transcoders_name=transcoders_name,
        config=cfg,
        stats=stats,
    )


def _inputs_and_biases(
    model: HookedModel,
    transcoders: TranscoderSet,
    repl: LocalReplacement,
    targets: Targets,
    n: int,
    node_rows: torch.Tensor,
    target_ids: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each kept target's input on the prompt (the replacement model with the recorded sources) and with every
    source at zero; node ``node_rows[i]`` is target ``target_ids[i]``."""
    from circuitscope.graphs.rows import target_values

    zero = Sources(
        torch.zeros_like(repl.embed), torch.zeros_like(repl.errors), torch.zeros_like(repl.features.activation)
    )
    dtype = torch.promote_types(repl.embed.dtype, torch.float32)
    inputs, biases = torch.zeros(n, dtype=dtype), torch.zeros(n, dtype=dtype)
    with torch.no_grad():
        row0 = torch.zeros(len(target_ids), dtype=torch.long)
        for where, sources in ((inputs, None), (biases, zero)):
            fp = repl.run(model, transcoders, sources, logits=False)
            values = target_values(fp, targets, target_ids, row0)
            where[node_rows] = values.to(dtype) + targets.bias[target_ids].to(dtype)
    return inputs, biases
