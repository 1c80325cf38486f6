"""The configuration of the in-context regression lab (``circuitscope lab icl``) and its presets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from circuitscope.toy.errors import LabConfigError

__all__ = ["ICLConfig", "ICLPreset"]


@dataclass(frozen=True)
class ICLConfig:
    """Tasks, models and training of the in-context linear regression lab."""

    # the tasks: x ~ U(-1, 1)^d, w ~ N(0, I), y = w . x + noise
    d: int = 10
    """Input dimension of the regression tasks (the paper: 10)."""
    n_context: int = 10
    """Context pairs per training task (the paper: 10); the query comes after them."""
    noise: float = 0.0
    """Standard deviation of the label noise (0: noiseless, as in the paper; the least-squares reference
    becomes ridge regression with this variance)."""
    # linear self-attention, one model per depth
    lsa_layers: tuple[int, ...] = (1, 2, 3)
    """Depths of the linear self-attention models; the model of depth k is compared with k steps of GD."""
    lsa_heads: int = 1
    """Heads per linear self-attention layer."""
    lsa_steps: int = 1000
    """Training steps of each linear self-attention model (with ``batch_size`` fresh tasks each)."""
    lsa_lr: float = 3e-3
    """AdamW learning rate of the linear self-attention models, constant, no weight decay."""
    batch_size: int = 1024
    """Tasks per training step of the linear models (fresh tasks every step)."""
    # the softmax transformer
    softmax_layers: int = 2
    """Layers of the softmax-attention transformer (0: not trained); each has attention and a GELU MLP
    of width 4 * softmax_d_model."""
    softmax_d_model: int = 32
    """Residual width of the softmax transformer."""
    softmax_heads: int = 4
    """Heads per softmax attention layer (a divisor of softmax_d_model); every position attends to the
    context tokens and to itself, never to the query."""
    softmax_steps: int = 1500
    """Training steps of the softmax transformer (AdamW, constant rate, no weight decay, like the linear
    models)."""
    softmax_lr: float = 1e-3
    """AdamW learning rate of the softmax transformer."""
    softmax_batch_size: int = 256
    """Tasks per training step of the softmax transformer (its steps cost more than the linear models')."""
    # measuring
    checkpoint_every: int = 100
    """Steps between measurements (test loss, cosine to GD) and saved checkpoints; a run resumes from the
    latest."""
    eval_tasks: int = 2048
    """Held-out tasks for every measurement (and for the line search of the GD learning rate); a quarter
    of this many for each point of the length curves."""
    max_eval_context: int = 20
    """The loss against the number of context pairs is measured for 1 .. this many (beyond n_context: unseen)."""
    seed: int = 0
    """Seed of the tasks and the initialisations."""

    def __post_init__(self) -> None:
        for name in (
            "d",
            "n_context",
            "lsa_heads",
            "lsa_steps",
            "softmax_steps",
            "batch_size",
            "softmax_batch_size",
            "eval_tasks",
        ):
            if getattr(self, name) < 1:
                raise LabConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.checkpoint_every < 1:
            raise LabConfigError(f"checkpoint_every must be at least 1, got {self.checkpoint_every}")
        if self.noise < 0:
            raise LabConfigError(f"noise is a standard deviation and cannot be negative, got {self.noise}")
        if not self.lsa_layers or any(n < 1 or n > 12 for n in self.lsa_layers):
            raise LabConfigError(f"lsa_layers must be depths in 1..12, like (1, 2, 3); got {self.lsa_layers}")
        if len(set(self.lsa_layers)) != len(self.lsa_layers):
            raise LabConfigError(f"lsa_layers lists a depth twice: {self.lsa_layers}; give each depth once")
        if not 0 <= self.softmax_layers <= 12:
            raise LabConfigError(f"softmax_layers must lie in 0..12 (0: no softmax model), got {self.softmax_layers}")
        if self.softmax_heads < 1 or self.softmax_d_model % self.softmax_heads:
            raise LabConfigError(
                f"softmax_d_model ({self.softmax_d_model}) must be a multiple of softmax_heads ({self.softmax_heads})"
            )
        if not (self.lsa_lr > 0 and self.softmax_lr > 0):
            raise LabConfigError(
                f"learning rates must be positive, got lsa_lr {self.lsa_lr}, softmax_lr {self.softmax_lr}"
            )
        if self.max_eval_context < 1:
            raise LabConfigError(f"max_eval_context must be at least 1, got {self.max_eval_context}")

    @classmethod
    def preset(cls, name: ICLPreset) -> ICLConfig:
        """``default`` (minutes on 2 cores) or ``paper`` (depths 1..5, a 4-layer softmax model, longer training)."""
        if name not in get_args(ICLPreset):
            raise LabConfigError(f"unknown icl config {name!r}; choose one of {', '.join(get_args(ICLPreset))}")
        if name == "default":
            return cls()
        lsa: dict[str, Any] = {"lsa_layers": (1, 2, 3, 4, 5), "lsa_steps": 5000}
        softmax: dict[str, Any] = {
            "softmax_layers": 4,
            "softmax_d_model": 64,
            "softmax_batch_size": 512,
            "softmax_steps": 10_000,
        }
        return cls(**lsa, **softmax, checkpoint_every=250, eval_tasks=4096)


ICLPreset = Literal["default", "paper"]
"""``default``: minutes on 2 CPU cores; ``paper``: von Oswald et al.'s depths up to 5 and longer training."""
