"""How to train a set of transcoders: :class:`TranscoderTrainConfig` (what, how long, optimiser, bookkeeping).

The defaults are the README's default run: per-layer TopK transcoders (k = 32, 4 x d_model
features) on every layer, 500k tokens of the default corpus in contexts of 128, 8 contexts per
model forward.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from circuitscope.transcoders.errors import TranscoderConfigError
from circuitscope.transcoders.modules import ARCHITECTURES, KINDS, TranscoderArchitecture, TranscoderKind

__all__ = ["TranscoderTrainConfig"]


@dataclass(frozen=True)
class TranscoderTrainConfig:
    """How to train transcoders for every chosen layer at once, from one model forward per batch."""

    kind: TranscoderKind = "per_layer"
    """``per_layer`` or ``cross_layer``."""
    architecture: TranscoderArchitecture = "topk"
    """``relu`` (L1 penalty), ``topk`` or ``jumprelu`` (L0 penalty)."""
    layers: tuple[int, ...] | None = None
    """The layers to cover, increasing (None: every layer of the model)."""
    expansion: int = 4
    """Features per layer ``= expansion * d_model`` (ignored when ``d_sae`` is given)."""
    k: int = 32
    """Active features per token and layer (``topk``)."""
    d_sae: int | None = None
    """Features per layer."""
    skip: bool = False
    """Train a linear skip connection beside the features: its estimate is then
    ``features @ W_dec + b_dec + x @ W_skip``."""
    tokens: int = 500_000
    """Training tokens (BOS excluded); steps = tokens // tokens per step, and the
    corpus's shuffled contexts are cycled when it has fewer."""
    context_size: int = 128
    """Tokens per context (BOS first)."""
    batch_contexts: int = 8
    """Contexts per model forward and optimiser step (global, across DDP processes:
    each process runs the model on its share of them)."""
    lr: float = 6e-3
    """Peak learning rate (Adam)."""
    warmup_steps: int = 20
    """Linear learning-rate warm-up."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam's betas."""
    decay_fraction: float = 0.2
    """Final fraction of steps over which the learning rate decays linearly to zero."""
    sparsity_coefficient: float | None = None
    """L1 (``relu``, default 1e-3) or L0 (``jumprelu``, default 1e-3) coefficient; unused by ``topk``."""
    sparsity_warmup_steps: int = 50
    """Linear warm-up of the sparsity coefficient from zero."""
    bandwidth: float = 0.05
    """JumpReLU's straight-through kernel width, in units of the normalised
    pre-activations (inputs are scaled to a mean norm of ``sqrt(d_in)``)."""
    jumprelu_threshold_init: float = 0.05
    """JumpReLU's initial threshold."""
    exclude_bos: bool = True
    """Leave BOS positions out of training (their activations are outliers);
    when replaced, they keep their true MLP output."""
    dead_after_tokens: int = 200_000
    """A feature that has not fired for this many tokens counts as dead."""
    seed: int = 0
    """Initialisation and context-order seed."""
    checkpoint_every: int = 0
    """Steps between checkpoints (0: only at the end of the run,
    or where ``stop_after_steps`` ends it)."""
    log_every: int = 10
    """Steps between logged metrics."""

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("kind", self.kind, KINDS),
            ("architecture", self.architecture, ARCHITECTURES),
        ):
            if value not in allowed:
                raise TranscoderConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(layer) for layer in self.layers))
        object.__setattr__(self, "betas", (float(self.betas[0]), float(self.betas[1])))
        checks = {
            "expansion": self.expansion > 0,
            "d_sae": self.d_sae is None or self.d_sae > 0,
            "k": self.k > 0 and (self.d_sae is None or self.k <= self.d_sae),
            "tokens": self.tokens > 0,
            "context_size": self.context_size >= 2,
            "batch_contexts": self.batch_contexts > 0,
            "lr": self.lr > 0,
            "warmup_steps": self.warmup_steps >= 0,
            "decay_fraction": 0 <= self.decay_fraction <= 1,
            "sparsity_coefficient": self.sparsity_coefficient is None or self.sparsity_coefficient >= 0,
            "sparsity_warmup_steps": self.sparsity_warmup_steps >= 0,
            "bandwidth": self.bandwidth > 0,
            "jumprelu_threshold_init": self.jumprelu_threshold_init >= 0,
            "dead_after_tokens": self.dead_after_tokens > 0,
            "checkpoint_every": self.checkpoint_every >= 0,
            "log_every": self.log_every > 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise TranscoderConfigError(
                f"invalid transcoder training settings: {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)} "
                "(k must be at most d_sae; sizes, tokens and rates positive)"
            )

    def tokens_per_step(self, has_bos: bool) -> int:
        """Training tokens one step sees (BOS positions left out when ``exclude_bos``)."""
        return self.batch_contexts * (self.context_size - (1 if has_bos and self.exclude_bos else 0))

    def steps(self, has_bos: bool) -> int:
        return max(1, self.tokens // self.tokens_per_step(has_bos))

    @property
    def sparsity(self) -> float:
        if self.sparsity_coefficient is not None:
            return self.sparsity_coefficient
        return 0.0 if self.architecture == "topk" else 1e-3

    def lr_at(self, step: int, steps: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        decay_steps = int(steps * self.decay_fraction)
        start = steps - decay_steps
        decay = 1.0 if step < start or decay_steps == 0 else max(0.0, (steps - step) / decay_steps)
        return self.lr * warm * decay

    def sparsity_at(self, step: int) -> float:
        if not self.sparsity_warmup_steps:
            return self.sparsity
        return self.sparsity * min(1.0, (step + 1) / self.sparsity_warmup_steps)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["layers"] = None if self.layers is None else list(self.layers)
        out["betas"] = list(self.betas)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TranscoderTrainConfig:
        values = dict(data)
        if values.get("layers") is not None:
            values["layers"] = tuple(values["layers"])
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        return cls(**values)
