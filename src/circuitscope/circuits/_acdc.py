"""ACDC (Conmy et al. 2023): greedy pruning of edges, one forward pass per edge tried.

Start from the full graph. Visit the receivers from the logits backwards (reverse topological
order); at each receiver try removing each incoming edge, latest sender first: ablate it (see
:mod:`circuitscope.circuits._faithfulness`) and measure the circuit. The edge stays removed if the
damage is below ``threshold``:

- ``criterion="kl"``: the KL divergence of the circuit's answer distribution from the full
  model's grows by less than ``threshold`` (Conmy et al.'s default);
- ``criterion="metric"``: the task metric moves by less than ``threshold`` (in absolute value).

A node none of whose outputs is still used by a kept edge cannot affect the output, so the
edges into it are removed without trying them (ACDC's recursion only visits such nodes' parents
when they matter). The score of an edge is the damage its removal did (or would have done)
when it was tried; edges removed without a try score NaN.

ACDC costs one forward pass over the task per edge tried: affordable on small models (a few
thousand edges); for larger ones use EAP or EAP-IG.
"""

from __future__ import annotations

import math
import time
from typing import Literal, get_args

import torch

from circuitscope.circuits._faithfulness import CircuitRunner
from circuitscope.circuits.circuit import Circuit
from circuitscope.circuits.graph import CircuitError
from circuitscope.circuits.reference import Ablation
from circuitscope.core.hooked_model import HookedModel
from circuitscope.progress import OnProgress, track
from circuitscope.tasks.metrics import evaluate_metric
from circuitscope.tasks.task import Task

__all__ = ["acdc"]

Criterion = Literal["kl", "metric"]
"""What an edge's removal is judged by: the KL divergence from the full model, or the task metric."""


def _prune(
    runner: CircuitRunner, criterion: Criterion, threshold: float, on_progress: OnProgress | None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """ACDC's greedy pass: the kept edges, each tried edge's change in damage (NaN where untried), edges tried."""
    graph = runner.graph
    keep = graph.allowed.clone()
    scores = torch.full(keep.shape, math.nan)
    current = _damage(runner, criterion, keep)
    tried = 0
    # every edge in visiting order: receivers from the logits backwards, latest sender first
    senders = [reversed(keep[:, r].nonzero().flatten().tolist()) for r in range(graph.n_receivers)]
    edges = [(u, r) for r in reversed(range(graph.n_receivers)) for u in senders[r]]
    visiting, unused = -1, False
    for u, r in track(edges, "acdc", on_progress):
        if r != visiting:  # a new receiver: if its node feeds no kept edge, its edges are removed untried
            visiting, unused = r, graph.receivers[r].kind != "logits" and not _node_used(graph, keep, r)
        if unused:
            keep[u, r] = False
            continue
        keep[u, r] = False
        new = _damage(runner, criterion, keep)
        tried += 1
        change = (new - current) if criterion == "kl" else abs(new - current)
        scores[u, r] = change
        if change < threshold:
            current = new
        else:
            keep[u, r] = True
    return keep, scores, tried


# Keyword options one per line, each its own documented knob: alike in shape to other entry points, on purpose.
def acdc(
    model: HookedModel,
    task: Task,
    threshold: float,
    *,
    criterion: Criterion = "kl",
    ablation: Ablation = "corrupted",
    batch_size: int = 32,
    seed: int = 0,
    model_name: str = "model",
    on_progress: OnProgress | None = None,
) -> Circuit:
    """Prune the graph greedily; the kept edges are the circuit. See the module docstring.

    ``on_progress(stage, done, total)`` is told each edge tried or pruned (stage ``acdc``, ``total`` the graph's
    edges; default: a progress bar on stderr).
    """
    if not threshold >= 0 or math.isinf(threshold):
        raise CircuitError(f"threshold must be a finite number >= 0, got {threshold}")
    if criterion not in get_args(Criterion):
        raise CircuitError(f"unknown ACDC criterion {criterion!r}; choose 'kl' or 'metric'")
    t0 = time.perf_counter()
    runner = CircuitRunner(model, task, ablation=ablation, batch_size=batch_size, seed=seed)
    graph = runner.graph
    keep, scores, tried = _prune(runner, criterion, threshold, on_progress)
    final = runner.faithfulness(keep)
    info = {"threshold": threshold, "criterion": criterion, "edges_tried": tried, "seconds": time.perf_counter() - t0,
            "faithfulness": final.to_dict()}  # fmt: skip
    return Circuit.found(
        model, task, keep, scores, graph=graph, model_name=model_name, method="acdc", ablation=ablation, info=info,
        metric=runner.metric,
    )  # fmt: skip


def _damage(runner: CircuitRunner, criterion: Criterion, edges: torch.Tensor) -> float:
    """The mean metric (``metric``) or the mean KL divergence from the full model (``kl``) with only ``edges`` kept."""
    logits = runner.logits(edges)
    if criterion == "metric":
        return runner._mean(logits)
    total = 0.0
    for lg, clean in zip(logits, runner.clean_logits, strict=True):
        rows = torch.zeros(lg.shape[0], dtype=torch.long, device=lg.device)
        kl = evaluate_metric("kl", lg, rows, rows, clean)
        total += float(kl.double().sum())
    return total / len(runner.task)


def _node_used(graph, keep: torch.Tensor, r: int) -> bool:
    """Whether the node owning receiver ``r`` still has a kept outgoing edge."""
    rec = graph.receivers[r]
    if rec.kind == "mlp":
        owners = [graph.sender(f"m{rec.layer}")]
    elif rec.kind == "q" or graph.n_kv_heads == graph.n_heads:
        owners = [graph.sender(f"a{rec.layer}.h{rec.head}")]
    else:  # a key/value head is used by its group of query heads
        group = graph.n_heads // graph.n_kv_heads
        owners = [graph.sender(f"a{rec.layer}.h{h}") for h in range(rec.head * group, (rec.head + 1) * group)]
    return bool(keep[owners].any())
