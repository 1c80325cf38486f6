"""The next-token loss: cross-entropy of each token given the logits at the position before it.

One function computes it for every analysis (:func:`next_token_loss`; :func:`token_loss` is
the cross-entropy under it). :func:`next_token_loss_from_resid` starts from the final residual
stream and unembeds a bounded number of positions at a time, so a 262k-token vocabulary never
materialises logits for a whole batch; :func:`mean_loss` is the mean loss of a model over texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, get_args

import torch
from jaxtyping import Bool, Float, Int

from circuitscope.core.replay import unembed_at
from circuitscope.engine.batching import batch_slices
from circuitscope.errors import ShapeError

if TYPE_CHECKING:
    from circuitscope.core.hook_points import HookFn
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["REDUCTIONS", "Reduction", "mean_loss", "next_token_loss", "next_token_loss_from_resid", "token_loss"]

Reduction = Literal["none", "sum", "mean"]
"""``none``: a loss per target; ``sum``/``mean``: their sum or mean (over the targets the mask keeps)."""
REDUCTIONS: tuple[str, ...] = get_args(Reduction)


def token_loss(
    logits: Float[torch.Tensor, "*rows d_vocab"],
    targets: Int[torch.Tensor, "*rows"],
    *,
    mask: Bool[torch.Tensor, "*rows"] | None = None,
    reduction: Reduction = "none",
) -> Float[torch.Tensor, "*rows"] | Float[torch.Tensor, ""]:
    """``-log softmax(logits)[target]`` of each row, in float32.

    ``mask`` keeps some targets: ``none`` gives 0 at the others, ``sum``/``mean`` leave them out.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    logp = logits.float().log_softmax(-1)
    losses = -logp.gather(-1, targets.to(logp.device)[..., None])[..., 0]
    if mask is not None:
        keep = mask.to(losses.device, torch.bool)
        if reduction == "none":
            return losses.masked_fill(~keep, 0.0)
        losses = losses[keep]
    return losses if reduction == "none" else losses.sum() if reduction == "sum" else losses.mean()


def next_token_loss(
    logits: Float[torch.Tensor, "*batch pos d_vocab"],
    tokens: Int[torch.Tensor, "*batch pos"],
    start_pos: int = 0,
    *,
    mask: Bool[torch.Tensor, "*batch pos"] | None = None,
    reduction: Reduction = "mean",
) -> Float[torch.Tensor, "*batch targets"] | Float[torch.Tensor, ""]:
    """Cross-entropy of predicting ``tokens[..., p + 1]`` from ``logits[..., p]``, for ``p >= start_pos``.

    ``mask`` (over ``tokens``) says which tokens count as targets (e.g. not padding, not BOS).
    With ``reduction="none"`` entry ``[..., i]`` is the loss of token ``start_pos + i + 1``.
    """
    if tokens.shape != logits.shape[:-1]:
        raise ShapeError(f"tokens {tuple(tokens.shape)} do not match logits {tuple(logits.shape)}")
    return token_loss(
        logits[..., start_pos:-1, :],
        tokens[..., start_pos + 1 :],
        mask=None if mask is None else mask[..., start_pos + 1 :],
        reduction=reduction,
    )


def next_token_loss_from_resid(
    model: HookedModel,
    final_resid: Float[torch.Tensor, "rows pos d_model"],
    tokens: Int[torch.Tensor, "batch pos"],
    start_pos: int = 0,
    *,
    chunk_size: int = 256,
) -> Float[torch.Tensor, " copies"]:
    """Mean next-token loss (after ``start_pos``) of each stacked copy of the batch, from the final residual stream.

    ``final_resid`` is ``copies`` copies of the batch ``tokens`` stacked on dim 0 (copy-major).
    Logits are made ``chunk_size`` positions at a time (final norm, unembedding, softcap, as the
    model does), so memory stays bounded for any vocabulary.
    """
    copies = final_resid.shape[0] // tokens.shape[0]
    pred = final_resid[:, start_pos:-1].reshape(-1, 1, final_resid.shape[-1])  # [copies*b*(p-1-start), 1, d]
    target = tokens[:, start_pos + 1 :].repeat(copies, 1).reshape(-1)
    losses = [
        token_loss(
            unembed_at(model, pred[s], torch.zeros(s.stop - s.start, dtype=torch.long, device=final_resid.device)),
            target[s],
        )
        for s in batch_slices(target.shape[0], chunk_size)
    ]
    return torch.cat(losses).view(copies, -1).mean(1)


@torch.no_grad()
def mean_loss(
    model: HookedModel, texts: Sequence[str], hooks: Sequence[tuple[str, HookFn]] = (), *, batch_size: int = 8
) -> float:
    """Mean next-token cross-entropy over every predicted token of ``texts`` (padding excluded), with ``hooks``.

    ``batch_size`` bounds the rows of one forward pass, a row being one text (right-padded to the batch's longest).
    """
    total, count = 0.0, 0
    for rows in batch_slices(len(texts), batch_size):
        ids, mask = model.tok.to_tokens(list(texts[rows]), truncate=True)
        logits = model.run_with_hooks(ids, list(hooks), attention_mask=mask if not bool(mask.all()) else None)
        total += float(next_token_loss(logits, ids, mask=mask, reduction="sum"))
        count += int(mask[:, 1:].sum())
    if count == 0:
        raise ValueError("the neutral texts have no token to predict; give longer texts")
    return total / count
