"""Per-token loss of two models on the same token contexts: the change per context, with its interval, and
the tokens that got most better or worse (as :class:`~circuitscope.diffing.LossDiff` contexts)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float, Int

from circuitscope.diffing import Context, LossDiff
from circuitscope.engine.batching import batch_slices
from circuitscope.engine.loss import next_token_loss
from circuitscope.studies.estimates import Estimate, estimate

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["LossChange", "context_losses", "loss_change"]


@torch.no_grad()
def context_losses(
    model: HookedModel, tokens: Int[torch.Tensor, "n pos"], batch_size: int
) -> Float[torch.Tensor, "n targets"]:
    """Next-token loss of every predicted token of every context (CPU)."""
    out = []
    for rows in batch_slices(tokens.shape[0], batch_size):
        ids = tokens[rows].to(model.device)
        out.append(next_token_loss(model(ids), ids, reduction="none").cpu())
    return torch.cat(out)


def _context_json(c: Context) -> dict[str, Any]:
    return {
        "context": "".join(c.tokens[: c.focus]),
        "token": c.tokens[c.focus],
        "loss_before": c.loss_a,
        "loss_after": c.loss_b,
        "change": c.diff,
    }


@dataclass(frozen=True)
class LossChange:
    """Loss before and after on one kind of text, per token and per context."""

    name: str
    """``in-domain`` or ``out-of-domain``."""
    before: Estimate
    """Mean per-context loss of the model before (nats per token)."""
    after: Estimate
    """The same for the model after."""
    change: Estimate
    """Paired per-context change, after minus before (negative: the model got better)."""
    tokens: LossDiff
    """Every token's loss under both models (A: before, B: after)."""
    top_k: int
    """How many tokens :attr:`improved` and :attr:`worsened` list."""

    @property
    def improved(self) -> list[Context]:
        """The tokens whose loss fell most."""
        return [c for c in self.tokens.top_contexts(self.top_k, by="a_worse") if c.diff < 0]

    @property
    def worsened(self) -> list[Context]:
        """The tokens whose loss rose most."""
        return [c for c in self.tokens.top_contexts(self.top_k, by="b_worse") if c.diff > 0]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "before": self.before.to_json(),
            "after": self.after.to_json(),
            "change": self.change.to_json(),
            "n_tokens": sum(d.numel() for d in self.tokens.diff),
            "improved": [_context_json(c) for c in self.improved],
            "worsened": [_context_json(c) for c in self.worsened],
        }


def _str_tokens(model: HookedModel, row: torch.Tensor) -> list[str]:
    if model.tokenizer is None:
        return [str(int(t)) for t in row]
    return model.to_str_tokens(row)


def loss_change(
    before: HookedModel,
    after: HookedModel,
    tokens: Int[torch.Tensor, "n pos"],
    name: str,
    *,
    batch_size: int,
    top_k: int,
    n_boot: int,
    seed: int,
) -> LossChange:
    """Both models' per-token loss on ``tokens``; intervals resample the contexts."""
    la, lb = context_losses(before, tokens, batch_size), context_losses(after, tokens, batch_size)
    diff = LossDiff([_str_tokens(before, row) for row in tokens], list(la), list(lb))
    return LossChange(
        name=name,
        before=estimate(la.mean(1), n_boot, seed),
        after=estimate(lb.mean(1), n_boot, seed),
        change=estimate((lb - la).mean(1), n_boot, seed),
        tokens=diff,
        top_k=top_k,
    )
