"""What an ablated sender outputs: the corrupted run, a mean, a resampled prompt, or zero.

``corrupted``  each pair's corrupted prompt (activation patching's reference; what EAP scores estimate)
``mean``       the mean over the task's corrupted prompts at each position (prompts shorter than a
               position do not count towards it), the same for every prompt
``resample``   the corrupted prompt of another pair of the same length (a seeded derangement within
               each length; a pair with no other pair of its length keeps its own)
``zero``       zero (a sender that writes nothing)
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from jaxtyping import Float

from circuitscope.circuits.graph import CircuitError, Graph
from circuitscope.circuits.intervene import sender_outputs
from circuitscope.core.hooked_model import HookedModel
from circuitscope.engine.batching import batch_slices
from circuitscope.progress import OnProgress, track
from circuitscope.tasks.task import Task

__all__ = ["ABLATIONS", "Ablation", "reference_outputs"]

Ablation = Literal["corrupted", "mean", "resample", "zero"]
ABLATIONS: tuple[str, ...] = get_args(Ablation)


def check_ablation(ablation: str) -> None:
    if ablation not in ABLATIONS:
        raise CircuitError(f"unknown ablation {ablation!r}; choose one of {', '.join(ABLATIONS)}")


def _derangement(task: Task, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    perm = torch.arange(len(task))
    for length in task.answer_pos.unique():
        rows = (task.answer_pos == length).nonzero().flatten()
        if rows.numel() > 1:
            shift = torch.randperm(rows.numel(), generator=g)
            # a random cyclic order: every row gets the next one's prompt, never its own
            perm[rows[shift]] = rows[shift.roll(-1)]
    return perm


def reference_outputs(
    model: HookedModel,
    graph: Graph,
    task: Task,
    ablation: Ablation,
    *,
    batch_size: int = 32,
    seed: int = 0,
    rows: range | None = None,
    on_progress: OnProgress | None = None,
) -> Float[torch.Tensor, "sender batch pos d_model"]:
    """Every sender's ablated output for every pair of ``task`` (row i belongs to pair i).

    ``rows`` (a block of pairs, all by default) limits it to those pairs (row i belongs to pair
    ``rows[i]``), in the batches a whole run would use when ``rows`` starts at a multiple of
    ``batch_size``; ``mean`` is still the mean over every pair.

    ``on_progress(stage, done, total)`` is told each batch of prompts run (default: a progress bar on stderr;
    the circuit methods pass :data:`~circuitscope.progress.SILENT`, their own stages being what they report).
    """
    check_ablation(ablation)
    n, seq = len(task), task.seq_len
    block = range(n) if rows is None else rows
    if ablation == "zero":
        dtype = next(model.hf_model.parameters()).dtype
        return torch.zeros(graph.n_senders, len(block), seq, model.cfg.d_model, dtype=dtype, device=model.device)
    tokens = task.corrupted_tokens
    if ablation == "resample":
        tokens = tokens[_derangement(task, seed)]
    if ablation != "mean":
        tokens = tokens[block.start : block.stop]
    batches = track(batch_slices(len(tokens), batch_size), "ablated outputs", on_progress)
    acts = torch.cat([sender_outputs(model, graph, tokens[rows]) for rows in batches], dim=1)
    if ablation != "mean":
        return acts
    valid = (torch.arange(seq)[None, :] <= task.answer_pos[:, None]).to(acts.dtype).to(acts.device)  # [batch, pos]
    count = valid.sum(0).clamp_min(1)  # [pos]
    mean = torch.einsum("ubpd,bp->upd", acts, valid) / count[None, :, None]
    return mean[:, None].expand(-1, len(block), -1, -1)
