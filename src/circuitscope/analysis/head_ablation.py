"""Head-ablation importance: how much the next-token loss rises when one head is knocked out.

Each head is ablated in turn at ``attn.hook_z`` (its output before ``W_O``), so its write to the
residual stream becomes zero (``zero``) or its mean write over the data (``mean``, the mean of z
over batch and positions, which keeps the head's constant contribution). The loss is the mean
next-token cross-entropy over every position after ``start_pos``.

Cost: one recorded forward pass, then for each layer the blocks from that layer on (the blocks
before it see the same input in every ablated run and are not recomputed, see
:func:`~circuitscope.engine.head_ablation.ablate_each_head`), several heads at once as stacked
copies of the batch. The cross-entropy is taken in chunks of positions
(:func:`~circuitscope.engine.loss.next_token_loss_from_resid`), so a 262k-token vocabulary never
materialises logits for the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import torch
from jaxtyping import Float, Int

from circuitscope.analysis._top import top_cells
from circuitscope.core.replay import BlockReplay
from circuitscope.engine.grid import ScoreGrid
from circuitscope.engine.head_ablation import ablate_each_head
from circuitscope.engine.loss import next_token_loss_from_resid
from circuitscope.errors import ShapeError
from circuitscope.progress import OnProgress

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["HeadAblation", "HeadAblationMethod", "head_ablation_importance"]

HeadAblationMethod = Literal["zero", "mean"]
"""A head's output replaced by zero, or by its mean over the data."""


@dataclass(frozen=True, kw_only=True)
class HeadAblation(ScoreGrid):
    """Loss increase when each head is ablated: ``scores`` is ``[layer, head]``, in nats per token."""

    method: HeadAblationMethod
    """``zero`` or ``mean``."""

    @property
    def loss_increase(self) -> Float[torch.Tensor, "layer head"]:
        """Ablated loss minus clean loss (nats per token): the scores."""
        return self.scores

    @property
    def clean_loss(self) -> float:
        """Mean next-token loss of the unablated model."""
        assert self.clean_value is not None
        return self.clean_value

    def top(self, k: int = 5) -> list[tuple[int, int, float]]:
        """The ``k`` heads whose ablation hurts most, as (layer, head, loss increase)."""
        return top_cells(self.loss_increase, k)

    def to_dict(self) -> dict[str, Any]:
        return {"loss_increase": self.loss_increase.tolist(), "clean_loss": self.clean_loss, "method": self.method}


def head_ablation_importance(
    model: HookedModel,
    tokens: Int[torch.Tensor, "batch pos"],
    method: HeadAblationMethod = "zero",
    start_pos: int = 0,
    *,
    batch_size: int = 16,
    on_progress: OnProgress | None = None,
) -> HeadAblation:
    """Loss increase for every head ablated alone (zero- or mean-ablation of ``hook_z``).

    ``batch_size`` bounds the rows of one forward pass, a row being one sequence of ``tokens``
    with one head ablated (memory, not the result; 16 rows are 2048 tokens of 128-token sequences).
    ``on_progress(stage, done, total)`` is called after each pass; without it a progress bar is drawn.
    """
    if method not in get_args(HeadAblationMethod):
        raise ValueError(f"method must be 'zero' or 'mean', got {method!r}")
    if tokens.ndim != 2 or tokens.shape[1] < start_pos + 2:
        raise ShapeError(f"tokens must be [batch, pos] with pos >= start_pos + 2, got {tuple(tokens.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    cfg = model.cfg
    tokens = tokens.to(model.device)
    mean_z: dict[int, torch.Tensor] = {}

    def record_mean(z: torch.Tensor, hook: Any) -> None:
        mean_z[int(hook.name.split(".")[1])] = z.mean((0, 1))[None, None]  # [1, 1, head, d_head]

    with torch.no_grad():
        with model.hooks([("blocks.*.attn.hook_z", record_mean)] if method == "mean" else []):
            replay = BlockReplay(model, tokens)
        clean = float(next_token_loss_from_resid(model, replay.final_resid, tokens, start_pos)[0])
        losses = ablate_each_head(
            replay,
            mean_z,
            lambda final, _copies: next_token_loss_from_resid(model, final, tokens, start_pos),
            batch_size=batch_size,
            stage=f"{method}-ablating each head on {tokens.numel()} tokens",
            on_progress=on_progress,
        )
    return HeadAblation(
        scores=losses - clean,
        axes=("layer", "head"),
        labels={"layer": [str(i) for i in range(cfg.n_layers)], "head": [str(h) for h in range(cfg.n_heads)]},
        metric="loss",
        clean_value=clean,
        corrupted_value=None,
        method=method,
    )
