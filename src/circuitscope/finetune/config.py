"""How to fine-tune: the method (full or LoRA), the optimiser and the data budget, validated up front."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from circuitscope.finetune.errors import FinetuneError

__all__ = ["METHODS", "FinetuneConfig", "Method"]

Method = Literal["lora", "full"]
"""``lora``: low-rank adapters on the attention and MLP projections (merged into the weights when saved);
``full``: every parameter is trained."""
METHODS: tuple[str, ...] = get_args(Method)


# Same shape as src/circuitscope/sae/train_config.py:TrainConfig on purpose: both are optimiser settings (steps, lr,
# batch, warm-up, decay), each field with its docstring; the runs they configure share the trainer, not the fields.
@dataclass(frozen=True)
class FinetuneConfig:
    """A fine-tuning run: the defaults finish in minutes on Gemma-3-270M on 2 CPU cores (docs/rewiring.md)."""

    method: Method = "lora"
    """``lora`` or ``full`` (see :data:`Method`)."""
    steps: int = 10
    """Optimiser steps (0: no update at all, the model is saved as it was)."""
    lr: float = 2e-3
    """Peak learning rate of AdamW (after ``warmup_steps``)."""
    batch_size: int = 4
    """Contexts per optimiser step."""
    context_size: int = 32
    """Tokens per training context (BOS included)."""
    n_contexts: int = 120
    """Training contexts taken from the corpus (after a seeded shuffle)."""
    n_heldout: int = 32
    """Further contexts of the same corpus kept out of training, saved with the model for the rewiring study."""
    lora_rank: int = 8
    """LoRA's rank r."""
    lora_alpha: float = 16.0
    """LoRA's scale numerator: an adapter adds ``(alpha / r) * B @ A``."""
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    """Names of the linear modules that get adapters (those the model lacks are skipped; none found is an error)."""
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay."""
    warmup_steps: int = 2
    """Linear warm-up of the learning rate over this many steps."""
    grad_clip: float | None = 1.0
    """Clip the global gradient norm to this (None: no clipping)."""
    checkpoint_every: int = 5
    """Save a checkpoint (with ``out``) every this many steps, and at the end."""
    seed: int = 0
    """Seeds the context shuffle, the batches and the LoRA initialisation."""
    threads: int | None = None
    """torch CPU threads while training (None: leave as is)."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise FinetuneError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.steps < 0:
            raise FinetuneError(f"steps must be 0 or more, got {self.steps}")
        if not self.lr > 0:
            raise FinetuneError(f"lr must be positive, got {self.lr}; try 2e-3 for LoRA, 1e-5 for full fine-tuning")
        if not 1 <= self.batch_size <= self.n_contexts:
            raise FinetuneError(
                f"batch_size must lie in [1, n_contexts={self.n_contexts}], got {self.batch_size}; "
                "lower batch_size or raise n_contexts"
            )
        if self.context_size < 2:
            raise FinetuneError(f"context_size must be at least 2 tokens, got {self.context_size}")
        if self.n_heldout < 1:
            raise FinetuneError(f"n_heldout must be at least 1 (the study's in-domain text), got {self.n_heldout}")
        if self.lora_rank < 1 or not self.lora_alpha > 0:
            raise FinetuneError(f"lora_rank must be >= 1 and lora_alpha > 0, got {self.lora_rank}, {self.lora_alpha}")
        if self.method == "lora" and not self.lora_targets:
            raise FinetuneError("lora_targets is empty; name the linear modules to adapt, e.g. ('q_proj', 'v_proj')")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.checkpoint_every < 1:
            raise FinetuneError("warmup_steps and weight_decay must not be negative, checkpoint_every at least 1")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise FinetuneError(f"grad_clip must be positive or None, got {self.grad_clip}")
        if self.threads is not None and self.threads < 1:
            raise FinetuneError(f"threads must be at least 1, got {self.threads}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
