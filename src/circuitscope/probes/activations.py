"""Activations of many texts at one token position, in batches: the input of probes and steering vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch
from jaxtyping import Float

from circuitscope.engine.batching import batch_slices
from circuitscope.errors import ShapeError
from circuitscope.progress import OnProgress, track

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["Position", "activations_at_position"]

Position = int | Literal["mean"]
"""A token position: an index into each text's own tokens (BOS included; -1 = its last token),
or ``"mean"``: the mean over its tokens after BOS."""


@torch.no_grad()
def activations_at_position(
    model: HookedModel,
    texts: Sequence[str],
    hooks: str | Sequence[str],
    position: Position = -1,
    batch_size: int = 16,
    *,
    stage: str = "caching activations",
    on_progress: OnProgress | None = None,
) -> dict[str, Float[torch.Tensor, "n d"]]:
    """The activation at ``position`` of each text, for each hook: ``{hook: [n_texts, d]}`` (float32, CPU).

    Texts are right-padded in batches; a causal model's real positions never see the padding.
    The forward pass stops after the last hook needed. Activations with more than one
    trailing axis (``hook_z`` is [head, d_head]) are flattened. Progress: ``stage``, one unit a batch.
    """
    names = [hooks] if isinstance(hooks, str) else list(hooks)
    if not texts:
        raise ValueError("no texts given")
    for name in names:
        model.hook_point(name)
    out: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    for rows in track(batch_slices(len(texts), batch_size), stage, on_progress):
        start, batch = rows.start, list(texts[rows])
        ids, mask = model.tok.to_tokens(batch)
        lengths = mask.sum(1)
        if isinstance(position, int):
            too_short = [(i, int(n)) for i, n in enumerate(lengths) if not -int(n) <= position < int(n)]
            if too_short:
                i, n = too_short[0]
                raise ShapeError(f"position {position} is outside text {start + i} ({batch[i]!r}, {n} tokens)")
        attn = mask if not bool(mask.all()) else None
        _, cache = model.run_with_cache(ids, names=names, stop_early=True, attention_mask=attn)
        for name in names:
            act = cache[name].float()
            act = act.reshape(act.shape[0], act.shape[1], -1)
            if position == "mean":
                first = 1 if model.tok.default_prepend_bos else 0
                keep = mask.clone().to(act.device)
                keep[:, :first] = 0
                pooled = (act * keep[..., None]).sum(1) / keep.sum(1, keepdim=True).clamp_min(1)
            else:
                idx = torch.tensor([position % int(n) for n in lengths], device=act.device)
                pooled = act[torch.arange(act.shape[0], device=act.device), idx]
            out[name].append(pooled.cpu())
    return {n: torch.cat(v) for n, v in out.items()}
