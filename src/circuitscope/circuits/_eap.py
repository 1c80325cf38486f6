"""Edge attribution patching: EAP (Syed et al. 2023) and EAP-IG (Hanna et al. 2024).

Ablating the edge ``u -> r`` (receiver ``r`` reads the ablated output ``a~_u`` instead of ``a_u``)
changes the receiver's input by ``a~_u - a_u``. To first order the metric changes by

    score(u -> r) = (a~_u - a_u) . d metric / d x_r

summed over prompts and positions, with ``x_r`` the receiver's input before its norm and the
metric the mean over the task's prompts. **EAP** takes the gradient at the clean run: one
forward pass for the ablated outputs, one clean forward pass and one backward pass score every
edge. **EAP-IG** averages the gradient over ``steps`` runs whose input embeddings are
interpolated from the ablated input to the clean one, ``x_0 = a~ + (k / steps)(a - a~)`` for
``k = 1 .. steps`` (integrated gradients on the inputs, Hanna et al.'s "EAP-IG-inputs"); with
``steps = 1`` it is EAP. A score estimates ``metric(edge ablated) - metric(clean)``: a large
negative score for the logit difference marks an edge the behaviour needs.

The KL divergence to the clean run has zero gradient at the clean run, so EAP with the ``kl``
metric is refused (use EAP-IG, whose interpolated runs are not at the minimum).

Under ``torchrun`` the batches of prompts are split across the ranks in contiguous blocks
(:func:`~circuitscope.engine.distributed.shard`); each rank runs only its pairs' ablated outputs
(every pair's for the ``mean`` ablation, a mean over all of them), and every rank gets every batch's
share of the scores, summed in batch order as one process sums them. A batch is the same
computation in either case, so the scores equal one process's at the same ``batch_size`` bit for bit
(on the same device and thread count; matrix kernels on another thread count may round differently).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import torch

from circuitscope.circuits.graph import CircuitError, Graph
from circuitscope.circuits.intervene import EdgeRun, graph_of
from circuitscope.circuits.reference import Ablation, reference_outputs
from circuitscope.core.hooked_model import HookedModel
from circuitscope.engine.batching import batch_slices
from circuitscope.engine.distributed import all_gather, check_same_arguments, current_world, shard
from circuitscope.engine.grid import ScoreGrid
from circuitscope.progress import SILENT, OnProgress, track
from circuitscope.tasks.metrics import MetricName, evaluate_metric
from circuitscope.tasks.task import Task

__all__ = ["EdgeScores", "eap", "eap_ig", "edge_scores"]


@dataclass(frozen=True, kw_only=True)
class EdgeScores(ScoreGrid):
    """A score for every edge of the graph, on axes ``("sender", "receiver")`` labelled with the graph's node names.

    ``scores``: estimated change of the mean metric when the edge alone is ablated; NaN where there is no edge.
    """

    graph: Graph = field(metadata={"json": False})
    """The graph the scores index (``[sender, receiver]``)."""
    method: str
    """``eap``, ``eap-ig`` or ``acdc``."""
    metric: MetricName
    """The metric the scores are about."""
    ablation: str
    """What an ablated sender outputs (see :mod:`circuitscope.circuits.reference`)."""
    steps: int
    """Integrated-gradient steps (1 for EAP)."""
    clean_value: float
    """Mean metric of the clean run."""
    corrupted_value: None = None
    """EAP runs no corrupted forward pass of its own."""
    seconds: float
    """Wall time of the scoring."""

    def ranked(self, by_abs: bool = True) -> list[tuple[str, float]]:
        """Every edge as (``sender->receiver``, score), strongest first (by ``|score|`` by default)."""
        s = self.scores
        key = s.abs() if by_abs else s
        key = torch.where(self.graph.allowed, key, torch.full_like(key, -torch.inf))
        order = key.flatten().argsort(descending=True)[: self.graph.n_edges]
        n_r = s.shape[1]
        return [(self.graph.edge_name(int(i) // n_r, int(i) % n_r), float(s.flatten()[i])) for i in order]

    def top_mask(self, n: int, by_abs: bool = True) -> torch.Tensor:
        """``[sender, receiver]`` mask of the ``n`` strongest edges."""
        if n < 0:
            raise CircuitError(f"the number of edges to keep must be >= 0, got {n}")
        key = self.scores.abs() if by_abs else self.scores
        key = torch.where(self.graph.allowed, torch.nan_to_num(key, nan=0.0), torch.full_like(key, -torch.inf))
        mask = torch.zeros_like(self.graph.allowed)
        if n:
            idx = key.flatten().topk(min(n, self.graph.n_edges)).indices
            mask.view(-1)[idx] = True
        return mask

    def to_dict(self, top: int = 50) -> dict[str, Any]:
        return {
            "method": self.method,
            "metric": self.metric,
            "ablation": self.ablation,
            "steps": self.steps,
            "clean_value": self.clean_value,
            "n_edges": self.graph.n_edges,
            "seconds": self.seconds,
            "top_edges": [{"edge": e, "score": s} for e, s in self.ranked()[:top]],
        }


def _mean_metric(
    task: Task, metric: MetricName, logits: torch.Tensor, rows: slice, clean: torch.Tensor | None
) -> torch.Tensor:
    dev = logits.device
    values = evaluate_metric(metric, logits, task.correct[rows].to(dev), task.incorrect[rows].to(dev), clean)
    return values.sum() / len(task)


class _Batch:
    """One batch of prompts being scored: its ablated outputs, the clean run and the gradients summed over steps."""

    def __init__(
        self, model: HookedModel, graph: Graph, task: Task, rows: slice, ablated: torch.Tensor, steps: int,
        metric: MetricName,
    ) -> None:  # fmt: skip
        self.model, self.graph, self.task, self.rows, self.steps = model, graph, task, rows, steps
        self.metric: MetricName = metric
        self.tokens = task.clean_tokens[rows].to(model.device)
        self.answer_pos = task.answer_pos[rows].to(model.device)
        self.ablated = ablated
        """``[sender, batch, pos, d_model]``: what each sender outputs when ablated, for these prompts."""
        self.clean_acts: torch.Tensor | None = None
        self.clean_logits: torch.Tensor | None = None
        self.clean_value = 0.0
        """The batch's share of the clean run's mean metric."""
        if steps > 1 or metric == "kl":  # EAP-IG interpolates to the clean run; kl compares with it
            with torch.no_grad():
                run = EdgeRun(model, graph, *self.tokens.shape)
                self.clean_logits = run.answer_logits(self.tokens, self.answer_pos)
                self.clean_acts = run.acts
            self.clean_value = float(self._mean_metric(self.clean_logits))
        shape = (graph.n_receivers, *self.tokens.shape, model.cfg.d_model)
        self.grads = torch.zeros(shape, dtype=self.ablated.dtype, device=model.device)

    def _mean_metric(self, logits: torch.Tensor) -> torch.Tensor:
        return _mean_metric(self.task, self.metric, logits, self.rows, self.clean_logits)

    def step(self, k: int) -> None:
        """Integrated-gradient step ``k`` (of ``steps``; the clean run itself for EAP): add its gradients."""
        override = None
        if self.steps > 1:
            assert self.clean_acts is not None
            override = self.ablated[0] + (k / self.steps) * (self.clean_acts[0] - self.ablated[0])
        run = EdgeRun(self.model, self.graph, *self.tokens.shape, leaves=True, input_override=override)
        value = self._mean_metric(run.answer_logits(self.tokens, self.answer_pos, grad=True))
        self.grads += run.receiver_grads(value)
        if self.steps == 1:
            self.clean_acts = run.acts
            self.clean_value += float(value.detach())

    def scores(self) -> torch.Tensor:
        """``[sender, receiver]``: the batch's share of every edge's score, once every step is done."""
        assert self.clean_acts is not None
        delta = self.ablated - self.clean_acts  # [sender, batch, pos, d_model]
        return torch.einsum("ubpd,rbpd->ur", delta, self.grads / self.steps).double().cpu()


def _check_in_memory(model: HookedModel) -> None:
    """Refuse a model with weights offloaded to disk: the edge interventions read the heads' weights directly."""
    offloaded = sorted({n.rsplit(".", 1)[0] for n, p in model.hf_model.named_parameters() if p.device.type == "meta"})
    if offloaded:
        raise CircuitError(
            f"{len(offloaded)} modules of this model ({offloaded[0]}, ...) have their weights offloaded (device_map "
            "'disk'): EAP reads every head's W_Q, W_K, W_V and W_O outside the modules' forward passes, where "
            "accelerate has not loaded them. Load the model with every module on a device (cpu or a GPU)"
        )


def _score_batches(
    model: HookedModel, graph: Graph, task: Task, batches: list[slice], steps: int, metric: MetricName,
    ablation: Ablation, batch_size: int, seed: int, on_progress: OnProgress | None,
) -> list[tuple[torch.Tensor, float]]:  # fmt: skip
    """Each of ``batches`` (consecutive, this rank's): its share of the scores (float64) and of the clean metric."""
    if not batches:
        return []
    block = range(batches[0].start, batches[-1].stop)
    reference = reference_outputs(
        model, graph, task, ablation, batch_size=batch_size, seed=seed, rows=block, on_progress=SILENT
    )
    shares: list[tuple[torch.Tensor, float]] = []
    passes = [(rows, k) for rows in batches for k in range(1, steps + 1)]
    batch: _Batch | None = None
    for rows, k in track(passes, "eap" if steps == 1 else "eap-ig", on_progress):
        if k == 1:
            ablated = reference[:, rows.start - block.start : rows.stop - block.start]
            batch = _Batch(model, graph, task, rows, ablated, steps, metric)
        assert batch is not None
        batch.step(k)
        if k == steps:
            shares.append((batch.scores(), batch.clean_value))
    return shares


def edge_scores(
    model: HookedModel,
    task: Task,
    *,
    steps: int = 1,
    metric: MetricName | None = None,
    ablation: Ablation = "corrupted",
    batch_size: int = 16,
    seed: int = 0,
    on_progress: OnProgress | None = None,
) -> EdgeScores:
    """EAP (``steps=1``) or EAP-IG (``steps > 1``) scores of every edge. See the module docstring.

    ``on_progress(stage, done, total)`` is told each gradient pass done, a pass being one batch of prompts
    at one integrated-gradient step (stage ``eap`` or ``eap-ig``; default: a progress bar on stderr).
    Under ``torchrun`` the ranks share the batches (``total``: this rank's passes) and each returns every score.
    """
    if steps < 1:
        raise CircuitError(f"steps must be at least 1, got {steps}")
    if batch_size < 1:
        raise CircuitError(f"batch_size must be at least 1, got {batch_size}")
    metric = metric or task.metric
    if metric == "kl" and steps == 1:
        raise CircuitError(
            "the kl metric has zero gradient at the clean run, so EAP scores would all be 0; "
            "use EAP-IG (steps > 1) or the logit_diff / prob metric"
        )
    _check_in_memory(model)
    graph = graph_of(model)
    t0 = time.perf_counter()
    world = current_world()
    arguments = {"prompts": [len(task), task.seq_len], "steps": steps, "metric": metric, "ablation": ablation}
    check_same_arguments({**arguments, "batch_size": batch_size, "seed": seed}, world)  # the same batches everywhere
    every = batch_slices(len(task), batch_size)
    mine = [every[i] for i in shard(len(every), world)]
    shares = _score_batches(model, graph, task, mine, steps, metric, ablation, batch_size, seed, on_progress)
    scores = torch.zeros(graph.n_senders, graph.n_receivers, dtype=torch.float64)
    clean_total = 0.0
    for share, clean in chain.from_iterable(all_gather(shares, world)):  # batch order, as one process adds them
        scores += share
        clean_total += clean
    scores = scores.float()
    if not bool((scores[graph.allowed] != 0).any()):
        raise CircuitError(
            "every edge score is 0: the metric does not depend on the graph. Check that the clean and corrupted "
            "prompts differ, and that the metric reads answer tokens the model can change"
        )
    scores = torch.where(graph.allowed, scores, torch.full_like(scores, torch.nan))
    return EdgeScores(
        graph=graph,
        scores=scores,
        axes=("sender", "receiver"),
        labels={"sender": [s.name for s in graph.senders], "receiver": [r.name for r in graph.receivers]},
        method="eap" if steps == 1 else "eap-ig",
        metric=metric,
        ablation=ablation,
        steps=steps,
        clean_value=clean_total,
        seconds=time.perf_counter() - t0,
    )


def eap(model: HookedModel, task: Task, **kwargs: Any) -> EdgeScores:
    """Edge attribution patching (Syed et al. 2023): two forward passes and one backward pass."""
    return edge_scores(model, task, steps=1, **kwargs)


def eap_ig(model: HookedModel, task: Task, steps: int = 5, **kwargs: Any) -> EdgeScores:
    """EAP with integrated gradients over ``steps`` interpolated inputs (Hanna et al. 2024; default 5)."""
    if steps < 2:
        raise CircuitError(f"EAP-IG needs at least 2 steps (1 step is EAP), got {steps}")
    return edge_scores(model, task, steps=steps, **kwargs)
