"""What each rank of the distributed tests runs: light to import (circuitscope only), as spawned ranks import it."""

from __future__ import annotations

from typing import Any

import circuitscope as cs
from circuitscope.analysis import head_ablation_importance, head_ablation_scan
from circuitscope.circuits import eap, eap_ig
from circuitscope.engine.distributed import DistributedError, process_group
from circuitscope.tasks import Task

__all__ = ["EAP_BATCH", "SCAN_ROWS", "on_rank", "sweeps"]

EAP_BATCH = 2
"""Five prompts in three batches for EAP: 2 for rank 0, 1 for rank 1 (an uneven split)."""
SCAN_ROWS = 10
"""Two heads of five prompts per ablation pass: 2 layers x 2 groups of heads = 4 passes, dealt 2 and 2."""


def sweeps(model: cs.HookedModel, task: Task) -> dict[str, Any]:
    """Every sweep on ``model``, and this process's number of passes per stage."""
    passes: dict[str, int] = {}

    def count(stage: str, done: int, total: int) -> None:
        passes[stage] = total

    scan = head_ablation_scan(model, task, "mean", batch_size=SCAN_ROWS, on_progress=count)
    importance = head_ablation_importance(model, task.clean_tokens, "zero", batch_size=SCAN_ROWS, on_progress=count)
    exact = eap(model, task, batch_size=EAP_BATCH, on_progress=count)
    ig = eap_ig(model, task, steps=2, ablation="mean", batch_size=EAP_BATCH, on_progress=count)
    resampled = eap(model, task, ablation="resample", batch_size=EAP_BATCH, seed=1)
    return {
        "scan": scan.raw,
        "scan_clean": scan.clean_value,
        "importance": importance.scores,
        "eap": exact.scores,
        "eap_clean": exact.clean_value,
        "eap_ig": ig.scores,
        "eap_ig_clean": ig.clean_value,
        "eap_resample": resampled.scores,
        "passes": passes,
    }


def on_rank(folder: str, task: Task) -> dict[str, Any]:
    """:func:`sweeps` on the model saved in ``folder``, in this rank of the launch; then each sweep given
    another batch size on each rank, whose refusal messages are returned under ``refused``."""
    with process_group() as world:
        model = cs.load_model(folder)
        out = {"rank": world.rank, **sweeps(model, task)}
        refused: dict[str, str] = {}
        for name, run in {
            "scan": lambda: head_ablation_scan(model, task, batch_size=SCAN_ROWS + world.rank),
            "eap": lambda: eap(model, task, batch_size=EAP_BATCH + world.rank),
        }.items():
            try:
                run()
                refused[name] = "accepted"
            except DistributedError as e:
                refused[name] = str(e)
        return {**out, "refused": refused}
