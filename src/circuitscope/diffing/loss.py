"""Per-token loss of two models on the same text, their difference, and the contexts where they differ most."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import torch
from jaxtyping import Float

from circuitscope.diffing.pairing import check_same_tokenizer
from circuitscope.engine.loss import next_token_loss

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["Context", "ContextOrder", "LossDiff", "loss_diff", "per_token_loss"]

ContextOrder = Literal["abs", "b_worse", "a_worse"]
"""Which differences come first: the largest in size, where B's loss is higher, where A's is."""


@torch.no_grad()
def per_token_loss(model: HookedModel, text: str, max_tokens: int | None = None) -> Float[torch.Tensor, " pos"]:
    """Next-token loss at every position of ``text`` (entry i is the loss of predicting token i + 1)."""
    ids = model.to_tokens(text, truncate=True)
    if max_tokens is not None:
        ids = ids[:, :max_tokens]
    return next_token_loss(model(ids)[0], ids[0], reduction="none").cpu()


@dataclass(frozen=True)
class Context:
    """A window of text around one predicted token where the models differ."""

    text_index: int
    position: int
    """Index of the predicted token in the text's tokens (BOS = 0)."""
    tokens: list[str]
    """The window's tokens; the predicted one is at ``focus``."""
    focus: int
    loss_a: float
    loss_b: float

    @property
    def diff(self) -> float:
        return self.loss_b - self.loss_a


@dataclass(frozen=True)
class LossDiff:
    """Per-token losses of models A and B on the same texts."""

    str_tokens: list[list[str]]
    """Each text's tokens (BOS included)."""
    loss_a: list[Float[torch.Tensor, " pos"]]
    loss_b: list[Float[torch.Tensor, " pos"]]

    @property
    def diff(self) -> list[torch.Tensor]:
        """``loss_b - loss_a`` per predicted token (positive: B is worse)."""
        return [b - a for a, b in zip(self.loss_a, self.loss_b, strict=True)]

    @property
    def mean_a(self) -> float:
        return float(torch.cat(self.loss_a).mean())

    @property
    def mean_b(self) -> float:
        return float(torch.cat(self.loss_b).mean())

    def top_contexts(self, k: int = 10, window: int = 12, by: ContextOrder = "abs") -> list[Context]:
        """The ``k`` predicted tokens with the largest difference (``abs``, ``b_worse`` or ``a_worse``)."""
        if by not in get_args(ContextOrder):
            raise ValueError(f"by must be one of {', '.join(get_args(ContextOrder))}, got {by!r}")
        scored = []
        for t, d in enumerate(self.diff):
            key = d.abs() if by == "abs" else d if by == "b_worse" else -d
            for p in range(d.shape[0]):
                scored.append((float(key[p]), t, p))
        scored.sort(reverse=True)
        out = []
        for _, t, p in scored[:k]:
            pos = p + 1
            lo = max(0, pos - window)
            toks = self.str_tokens[t][lo : pos + 3]
            out.append(Context(t, pos, toks, pos - lo, float(self.loss_a[t][p]), float(self.loss_b[t][p])))
        return out

    def to_dict(self, k: int = 10) -> dict[str, Any]:
        return {
            "mean_loss_a": self.mean_a,
            "mean_loss_b": self.mean_b,
            "mean_diff": self.mean_b - self.mean_a,
            "max_abs_diff": float(max(float(d.abs().max()) for d in self.diff)) if self.diff else 0.0,
            "n_tokens": int(sum(d.numel() for d in self.diff)),
            "top_contexts": [
                {
                    "text": c.text_index,
                    "position": c.position,
                    "token": c.tokens[c.focus],
                    "context": "".join(c.tokens[: c.focus]),
                    "loss_a": c.loss_a,
                    "loss_b": c.loss_b,
                    "diff": c.diff,
                }
                for c in self.top_contexts(k)
            ],
        }


def loss_diff(a: HookedModel, b: HookedModel, texts: Sequence[str], max_tokens: int | None = 512) -> LossDiff:
    """Per-token loss of both models on each text (same tokenizer required)."""
    check_same_tokenizer(a, b)
    if not texts:
        raise ValueError("give at least one text")
    str_tokens, la, lb = [], [], []
    for text in texts:
        ids = a.to_tokens(text, truncate=True)[0]
        if max_tokens is not None:
            ids = ids[:max_tokens]
        if ids.shape[0] < 2:
            raise ValueError(f"text {text[:40]!r} is too short: it needs at least one token to predict")
        str_tokens.append(a.to_str_tokens(ids))
        la.append(per_token_loss(a, text, max_tokens))
        lb.append(per_token_loss(b, text, max_tokens))
    return LossDiff(str_tokens, la, lb)
