"""A model's fingerprint: what steering vectors and circuit files record to refuse another model."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["model_fingerprint"]


def model_fingerprint(model: HookedModel) -> str:
    """Family, sizes and a hash of a sample of the embedding matrix: the same for the same weights."""
    c = model.cfg
    w = model.W_E.detach()
    step = max(1, w.shape[0] // 64)
    sample = w[::step][:64].float().cpu().contiguous()
    digest = hashlib.sha256(sample.numpy().tobytes()).hexdigest()[:16]
    return f"{c.family}-{c.n_layers}L-{c.d_model}d-{c.d_vocab}v-{digest}"
