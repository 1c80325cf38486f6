"""How to train an SAE: :class:`TrainConfig` (sizes, optimiser, sparsity, bookkeeping) and its schedules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from circuitscope.sae.base import ARCHITECTURES
from circuitscope.sae.errors import SAEConfigError, UnknownArchitectureError

__all__ = ["BDecInit", "DecoderNorm", "L1Weighting", "Normalization", "TrainConfig"]

L1Weighting = Literal["decoder_norm", "plain"]
"""How the L1 penalty weighs a latent: by its decoder row's norm, or not."""
DecoderNorm = Literal["unit", "none"]
"""Decoder rows kept at norm 1, or left free."""
Normalization = Literal["expected_average_only_in", "none"]
"""Input scaling during training."""
BDecInit = Literal["geometric_median", "mean", "zeros"]
"""Decoder bias initialisation."""


# Same shape as src/circuitscope/toy/grokking_lab.py:GrokkingConfig on purpose: a configuration is a dataclass
# with a docstring under each field; the SAE trainer's fields and a lab's share no meaning to merge.
@dataclass
class TrainConfig:
    """How to train an SAE (sizes, optimiser, sparsity, bookkeeping)."""

    architecture: str = "topk"
    """``relu``, ``topk``, ``batchtopk`` or ``jumprelu``."""
    expansion: int = 16
    """``d_sae = expansion * d_in`` (ignored when ``d_sae`` is given)."""
    d_sae: int | None = None
    """Number of latents."""
    k: int = 32
    """Active latents per token (``topk``, ``batchtopk``)."""
    tokens: int = 2_000_000
    """Training activations to see (steps = tokens // batch_size; the store is cycled in epochs)."""
    batch_size: int = 4096
    """Activations per step (global, across DDP processes)."""
    lr: float = 4e-4
    """Peak learning rate."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam's betas."""
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay."""
    warmup_steps: int = 50
    """Linear learning-rate warm-up."""
    decay_fraction: float = 0.2
    """Final fraction of steps over which the learning rate decays linearly to zero."""
    sparsity_coefficient: float | None = None
    """L1 coefficient (``relu``; default 5) or L0 coefficient (``jumprelu``; default 1e-3 for unit-scale inputs)."""
    sparsity_warmup_steps: int = 100
    """Linear warm-up of the sparsity coefficient from zero."""
    l1_weighting: L1Weighting = "decoder_norm"
    """``decoder_norm`` (Anthropic's 2024 update: penalty ``Σ f_i ||W_dec[i]||``) or ``plain``."""
    decoder_norm: DecoderNorm | None = None
    """``unit`` (decoder rows kept at norm 1) or ``none``; default ``none`` for decoder-norm-weighted L1, else unit."""
    normalize: Normalization = "expected_average_only_in"
    """Input scaling in training: ``expected_average_only_in`` (mean norm becomes sqrt(d_in)) or ``none``."""
    b_dec_init: BDecInit = "geometric_median"
    """Decoder bias initialisation: ``geometric_median``, ``mean`` or ``zeros``."""
    tied_init: bool = True
    """Initialise the encoder as the decoder's transpose."""
    aux_k: int | None = None
    """AuxK latents (``topk``/``batchtopk``); default ``d_in // 2``."""
    aux_coefficient: float = 1 / 32
    """AuxK loss weight."""
    dead_after_tokens: int = 1_000_000
    """A latent that has not fired for this many activations counts as dead."""
    bandwidth: float = 0.001
    """JumpReLU's straight-through kernel width (in units of normalised activations)."""
    jumprelu_threshold_init: float = 0.001
    """JumpReLU's initial threshold."""
    seed: int = 0
    """Initialisation and data-order seed."""
    shards_in_memory: int = 8
    """Shards loaded and shuffled together."""
    checkpoint_every: int = 0
    """Steps between checkpoints (0: only at the end)."""
    log_every: int = 10
    """Steps between logged metrics."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes stored with the run."""

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise UnknownArchitectureError(
                f"unknown SAE architecture {self.architecture!r}; registered: {', '.join(sorted(ARCHITECTURES))}"
            )
        checks = {
            "expansion": self.expansion > 0,
            "k": self.k > 0,
            "tokens": self.tokens > 0,
            "batch_size": self.batch_size > 0,
            "lr": self.lr > 0,
            "warmup_steps": self.warmup_steps >= 0,
            "decay_fraction": 0 <= self.decay_fraction <= 1,
            "sparsity_warmup_steps": self.sparsity_warmup_steps >= 0,
            "dead_after_tokens": self.dead_after_tokens > 0,
            "bandwidth": self.bandwidth > 0,
            "checkpoint_every": self.checkpoint_every >= 0,
            "log_every": self.log_every > 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise SAEConfigError(f"invalid training settings: {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)}")
        for name, value, allowed in (
            ("l1_weighting", self.l1_weighting, get_args(L1Weighting)),
            ("decoder_norm", self.decoder_norm, (None, *get_args(DecoderNorm))),
            ("normalize", self.normalize, get_args(Normalization)),
            ("b_dec_init", self.b_dec_init, get_args(BDecInit)),
        ):
            if value not in allowed:
                raise SAEConfigError(f"{name} must be one of {allowed}, got {value!r}")
        self.betas = (float(self.betas[0]), float(self.betas[1]))

    @property
    def steps(self) -> int:
        return max(1, self.tokens // self.batch_size)

    @property
    def unit_decoder(self) -> bool:
        if self.decoder_norm is not None:
            return self.decoder_norm == "unit"
        return not (ARCHITECTURES[self.architecture].decoder_norm_l1 and self.l1_weighting == "decoder_norm")

    @property
    def sparsity(self) -> float:
        if self.sparsity_coefficient is not None:
            return self.sparsity_coefficient
        return ARCHITECTURES[self.architecture].default_sparsity_coefficient

    def lr_at(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        decay_steps = int(self.steps * self.decay_fraction)
        start = self.steps - decay_steps
        decay = 1.0 if step < start or decay_steps == 0 else max(0.0, (self.steps - step) / decay_steps)
        return self.lr * warm * decay

    def sparsity_at(self, step: int) -> float:
        if not self.sparsity_warmup_steps:
            return self.sparsity
        return self.sparsity * min(1.0, (step + 1) / self.sparsity_warmup_steps)
