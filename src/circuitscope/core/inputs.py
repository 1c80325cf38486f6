"""Checks on what a forward pass is given: token ids and attention masks, refused with a clear error."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from circuitscope.core.config import ModelConfig
from circuitscope.errors import ShapeError, TokenizationError

__all__ = ["check_ids", "check_mask"]


def check_mask(mask: object, ids: torch.Tensor) -> torch.Tensor:
    """``mask`` as a [batch, pos] tensor of zeros and ones matching ``ids``, or a clear error."""
    if not isinstance(mask, torch.Tensor):
        raise ShapeError(
            f"attention_mask must be a tensor of 0s and 1s shaped like the tokens, got {type(mask).__name__}"
        )
    if mask.ndim == 1 and ids.shape[0] == 1:
        mask = mask[None]
    if mask.shape != ids.shape:
        raise ShapeError(
            f"attention_mask has shape {tuple(mask.shape)} but the tokens have shape {tuple(ids.shape)}; "
            "give one 0/1 entry per token (1 = attend, 0 = padding)"
        )
    if mask.is_complex() or not bool(((mask == 0) | (mask == 1)).all()):
        raise ShapeError("attention_mask must hold only 0s and 1s (1 = attend, 0 = padding)")
    return mask.to(torch.long)


def check_ids(tokens: object, cfg: ModelConfig) -> torch.Tensor:
    """Token ids as a [batch, pos] tensor, or a clear error saying what is wrong with them."""
    if not isinstance(tokens, torch.Tensor):
        kind = "a list that is not all strings" if isinstance(tokens, Sequence) else type(tokens).__name__
        raise TokenizationError(
            f"expected text (a string or a list of strings) or a tensor of token ids, got {kind}; "
            "pass token ids as a tensor, e.g. torch.tensor([[1, 2, 3]])"
        )
    if tokens.ndim == 1:
        tokens = tokens[None]
    if tokens.ndim != 2 or tokens.dtype not in (torch.long, torch.int, torch.int32, torch.int64):
        raise ShapeError(f"token ids must be an integer tensor [batch, pos], got {tuple(tokens.shape)} {tokens.dtype}")
    if tokens.shape[0] == 0 or tokens.shape[1] == 0:
        raise ShapeError(
            f"token ids of shape {tuple(tokens.shape)} hold no tokens; pass at least one prompt of at least "
            "one token (a BOS token, if nothing else)"
        )
    if tokens.shape[1] > cfg.n_ctx:
        raise TokenizationError(
            f"{tokens.shape[1]} tokens exceed the model's context of {cfg.n_ctx}; truncate them first"
        )
    if int(tokens.min()) < 0 or int(tokens.max()) >= cfg.d_vocab:
        raise ShapeError(f"token ids must lie in [0, {cfg.d_vocab}); got {int(tokens.min())}..{int(tokens.max())}")
    return tokens
