"""What every toy lab's configuration has: the model's width and its training, checked once.

:class:`LabConfig` is the base of the labs' configs (:class:`~circuitscope.toy.addition_lab.AdditionConfig`,
:class:`~circuitscope.toy.grokking_lab.GrokkingConfig`, :class:`~circuitscope.toy.induction.InductionConfig`):
the width fields go to :func:`~circuitscope.toy.model.build_toy_of` and the training fields to
:meth:`~circuitscope.toy.trainer.TrainConfig.of`, both by name. A lab adds its own fields, gives a field
another default by declaring it again, and checks its own fields in ``__post_init__`` before calling this
class's, which checks the training fields (with :class:`~circuitscope.toy.trainer.TrainConfig`'s messages).
:func:`lab_preset` is the ``default`` / ``paper`` choice of the labs that have both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.trainer import TrainConfig

__all__ = ["LabConfig", "lab_preset"]

L = TypeVar("L", bound="LabConfig")


@dataclass(frozen=True)
class LabConfig:
    """The model width and the AdamW training of a toy lab."""

    d_model: int = 64
    """Residual width."""
    n_heads: int = 4
    """Attention heads per layer."""
    steps: int = 3000
    """Training steps."""
    warmup_steps: int = 50
    """Linear warm-up steps."""
    lr: float = 1e-3
    """AdamW learning rate (reached after the warm-up)."""
    weight_decay: float = 0.1
    """AdamW weight decay."""
    checkpoint_every: int = 50
    """Steps between checkpoints (the lab's measurements are taken at each)."""
    seed: int = 0
    """Seed of the data and the initialisation."""

    def __post_init__(self) -> None:
        TrainConfig.of(self)  # validates the training fields


def lab_preset(config: type[L], lab: str, name: str, paper: Mapping[str, Any]) -> L:
    """A lab's preset: ``default`` (the config's defaults) or ``paper`` (with the fields in ``paper``)."""
    if name == "default":
        return config()
    if name == "paper":
        return config(**paper)
    raise LabConfigError(f"unknown {lab} config {name!r}; choose 'default' or 'paper'")
