"""Shared mechanics of the analyses: batching, next-token loss, scores over named axes, head ablation.

Below the domain packages and above :mod:`circuitscope.core`: nothing here knows a task, a
metric or a report. One piece per job, so an analysis that needs it reuses it instead of
writing it again:

- :mod:`~circuitscope.engine.batching`: the slices of a batched loop (:func:`batch_slices`),
  lists cut into groups (:func:`batched`), a function applied batch by batch (:func:`apply_in_batches`);
- :mod:`~circuitscope.engine.loss`: the next-token cross-entropy (:func:`next_token_loss`), also from the
  final residual stream with bounded memory (:func:`next_token_loss_from_resid`), and a model's mean
  loss over texts (:func:`mean_loss`);
- :mod:`~circuitscope.engine.grid`: :class:`ScoreGrid`, the result type of scores over named axes;
- :mod:`~circuitscope.engine.head_ablation`: every attention head ablated alone, on a
  :class:`~circuitscope.core.replay.BlockReplay` (:func:`ablate_each_head`);
- :mod:`~circuitscope.engine.distributed`: work split across ``torchrun`` ranks and gathered on rank 0
  (``process_group``, ``shard``, ``gather_to_main``, ``check_same_arguments``);
- :mod:`~circuitscope.engine.jsonl`: the objects of a JSON-lines file, with file:line errors (:func:`json_lines`).
"""

from circuitscope.engine.batching import apply_in_batches, batch_slices, batched
from circuitscope.engine.grid import AXIS_NAMES, AxisName, MetricGrid, ScoreGrid, component_labels
from circuitscope.engine.head_ablation import ablate_each_head
from circuitscope.engine.jsonl import json_lines
from circuitscope.engine.loss import (
    REDUCTIONS,
    Reduction,
    mean_loss,
    next_token_loss,
    next_token_loss_from_resid,
    token_loss,
)

__all__ = [
    "AXIS_NAMES",
    "REDUCTIONS",
    "AxisName",
    "MetricGrid",
    "Reduction",
    "ScoreGrid",
    "ablate_each_head",
    "apply_in_batches",
    "batch_slices",
    "batched",
    "component_labels",
    "json_lines",
    "mean_loss",
    "next_token_loss",
    "next_token_loss_from_resid",
    "token_loss",
]
