"""Building toy models: :func:`build_toy` makes a freshly initialised, optionally seeded, toy transformer.

The model itself (:class:`~circuitscope.models.toy.modeling.ToyTransformer` and its
:class:`~circuitscope.models.toy.modeling.ToyConfig`, re-exported by :mod:`circuitscope.toy`) is a
model family of its own and lives with its adapter in :mod:`circuitscope.models.toy`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from circuitscope.models.toy.modeling import ToyConfig, ToyTransformer

__all__ = ["build_toy", "n_params"]


def build_toy(seed: int | None = None, **config: Any) -> ToyTransformer:
    """A freshly initialised :class:`ToyTransformer` (``seed`` makes the init reproducible)."""
    cfg = ToyConfig(**config)
    if seed is None:
        return ToyTransformer(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ToyTransformer(cfg)


def n_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
