"""The end of a forward pass at one position per row: final norm, unembedding, final softcapping."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from jaxtyping import Float, Int

from circuitscope.errors import UnsupportedModelError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["unembed_at"]


def unembed_at(
    model: HookedModel,
    resid: Float[torch.Tensor, "batch pos d_model"],
    positions: Int[torch.Tensor, " batch"],
    columns: Int[torch.Tensor, " column"] | None = None,
) -> Float[torch.Tensor, "batch d_vocab"]:
    """Final norm, unembedding and final softcapping of one position per row (hooks fire as usual).

    ``columns``: only these vocabulary entries, ``[batch, column]`` (a metric that reads a few logits, such
    as a logit difference, needs no full-vocabulary product; the final transform is elementwise).
    """
    norm, unembed = model.wiring.final_norm, model.wiring.unembed
    if norm is None or unembed is None:
        raise UnsupportedModelError(f"the {model.cfg.family} model has no final norm and unembedding")
    rows = torch.arange(resid.shape[0], device=resid.device)
    normed = norm(resid)[rows, positions]  # the norm is called: its hook fires
    if columns is None:
        return model.unembed_resid(normed, normed=True)
    if model.wiring.unembed_head is not None or not isinstance(unembed, torch.nn.Linear):
        return model.unembed_resid(normed, normed=True)[:, columns]
    bias = None if unembed.bias is None else unembed.bias[columns]
    return model.wiring.softcap_logits(torch.nn.functional.linear(normed, unembed.weight[columns], bias))
