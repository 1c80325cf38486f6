"""Building toy models: :func:`build_toy` makes a freshly initialised, optionally seeded, toy transformer.

The model itself (:class:`~circuitscope.models.toy.modeling.ToyTransformer` and its
:class:`~circuitscope.models.toy.modeling.ToyConfig`, re-exported by :mod:`circuitscope.toy`) is a
model family of its own and lives with its adapter in :mod:`circuitscope.models.toy`.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from circuitscope.models.toy.modeling import ToyConfig, ToyTransformer

__all__ = ["build_toy", "build_toy_of", "n_params"]


def build_toy(seed: int | None = None, **config: Any) -> ToyTransformer:
    """A freshly initialised :class:`ToyTransformer` (``seed`` makes the init reproducible)."""
    cfg = ToyConfig(**config)
    if seed is None:
        return ToyTransformer(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ToyTransformer(cfg)


def build_toy_of(experiment: object, **overrides: Any) -> ToyTransformer:
    """:func:`build_toy` sized by a lab's experiment: its fields named like :class:`ToyConfig`'s arguments
    (``d_model``, ``n_heads``, ...) and its ``seed``; arguments it lacks keep their defaults, and ``overrides``
    win (the rule of :meth:`circuitscope.toy.trainer.TrainConfig.of` for the training fields)."""
    names = [name for name in inspect.signature(ToyConfig.__init__).parameters if name not in ("self", "kwargs")]
    taken = {name: getattr(experiment, name) for name in [*names, "seed"] if hasattr(experiment, name)}
    return build_toy(**{**taken, **overrides})


def n_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
