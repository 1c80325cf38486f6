"""Every attention head ablated alone, on a recorded forward pass.

:func:`ablate_each_head` replaces one head's ``attn.hook_z`` (its output before ``W_O``) by a
value (zero, a mean, another prompt's activation) and measures the model's output, for every head.
The blocks before the ablated layer see the same input in every run, so the forward pass
resumes at that layer from a :class:`~circuitscope.core.replay.BlockReplay`; several heads of a
layer are ablated in one pass as stacked copies of the batch (copy ``i`` loses head ``i`` of the group).

Under ``torchrun`` the passes are dealt to the ranks round-robin (a pass resuming at layer ``l`` runs
the blocks from ``l`` on, so contiguous blocks of passes would give rank 0 the most expensive ones)
and every rank gets every rank's numbers (:func:`~circuitscope.engine.distributed.all_gather`): each
pass is the same computation as in one process, so the gathered grid is the one-process grid, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import chain
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from circuitscope.core.capabilities import require_attention
from circuitscope.core.replay import BlockReplay
from circuitscope.engine.batching import batched
from circuitscope.engine.distributed import all_gather, check_same_arguments, current_world, shard
from circuitscope.progress import OnProgress, progress

__all__ = ["Measure", "ablate_each_head"]

Measure = Callable[[torch.Tensor, int], torch.Tensor]
"""``measure(final_resid, copies) -> [copies]``: one number per stacked copy of the batch, from the final
residual stream (before the final norm) of ``copies`` copies of the replayed batch."""


def ablate_each_head(
    replay: BlockReplay,
    values: Mapping[int, torch.Tensor],
    measure: Measure,
    *,
    batch_size: int,
    stage: str,
    on_progress: OnProgress | None = None,
) -> Float[torch.Tensor, "layer head"]:
    """``measure`` of the replayed run with each head's ``hook_z`` ablated alone: ``[layer, head]`` (CPU).

    ``values[layer]`` is what an ablated head of ``layer`` outputs, ``[batch or 1, pos or 1, head, d_head]``
    (positions beyond the batch's are cut off); a layer missing from ``values`` is zero-ablated.
    ``batch_size`` bounds the rows of one forward pass (a row: one sequence of the batch with one head
    ablated). ``on_progress(stage, done, total)`` is called after each pass of this rank (``total``: this
    rank's passes); without it a progress bar is drawn. Under ``torchrun`` the ranks share the passes and
    each returns the whole grid.
    """
    model = replay.model
    require_attention(model.cfg, "head ablation")
    n_layers, n_heads, b = model.cfg.n_layers, model.cfg.n_heads, replay.batch
    copies = max(1, batch_size // b)
    work = [(layer, heads) for layer in range(n_layers) for heads in batched(range(n_heads), copies)]
    world = current_world()
    check_same_arguments({"batch": list(replay.tokens.shape), "batch_size": batch_size, "stage": stage}, world)
    mine = [work[i] for i in shard(len(work), world, "round_robin")]
    parts: list[tuple[int, list[int], Tensor]] = []
    steps = mine if on_progress is not None else progress(mine, stage, total=len(mine))
    for done, (layer, heads) in enumerate(steps, 1):
        value = values.get(layer)

        def ablate(z: torch.Tensor, hook: Any, heads: list[int] = heads, value: Tensor | None = value) -> Tensor:
            z = z.clone()
            cut = None if value is None else value.to(z.device, z.dtype)[:, : z.shape[1]]
            for i, head in enumerate(heads):  # copy i of the batch loses head heads[i]
                z[i * b : (i + 1) * b, :, head] = 0 if cut is None else cut[:, :, head]
            return z

        with model.hooks([(f"blocks.{layer}.attn.hook_z", ablate)]):
            final = replay.run_resid(layer, replay.resid_pre[layer].repeat(len(heads), 1, 1))
        parts.append((layer, heads, measure(final, len(heads)).cpu()))
        if on_progress is not None:
            on_progress(stage, done, len(mine))
    out = torch.empty(n_layers, n_heads)
    for layer, heads, measured in chain.from_iterable(all_gather(parts, world)):
        out[layer, heads] = measured
    return out
