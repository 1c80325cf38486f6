"""The whispers study's settings: which dimensions of which residual stream each decoder reads, and how it trains.

A readout is ``"LAYER:HALF"``: the residual stream entering block ``LAYER`` (``blocks.LAYER.hook_resid_pre``,
the stream after ``LAYER`` blocks; layer 0 is the embeddings), and of its ``d_model`` dimensions

- ``low``: dimensions ``0 .. d/2 - 1``,
- ``high``: dimensions ``d/2 .. d - 1``,
- ``random``: ``d/2`` dimensions drawn with the config's seed (sorted),
- ``full``: all of them.

The residual basis is not privileged (any rotation of it is an equally good basis), so "the bottom
half" is one arbitrary choice of half: the random half is the comparison that says whether it is special.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import torch
from jaxtyping import Int

from circuitscope.studies.errors import StudyConfigError

__all__ = ["BOUNDS", "HALVES", "Half", "Readout", "WhispersConfig"]

Half = Literal["low", "high", "random", "full"]
"""Which of a residual stream's dimensions a decoder reads (see the module docstring)."""
HALVES: tuple[Half, ...] = get_args(Half)
BOUNDS = (
    "context_size>=3 batch_contexts>=1 steps>=1 d_decoder>=1 decoder_layers>=1 decoder_heads>=1 vocab_size>=2 "
    "test_documents>=1 test_contexts>=2 examples>=0 n_samples>=1 n_boot>=100 checkpoint_every>=0"
)
"""The least value of each integer setting, as ``name>=low`` words (the command's options are bound by them)."""
_MINIMA = {name: int(low) for name, _, low in (word.partition(">=") for word in BOUNDS.split())}


@dataclass(frozen=True)
class Readout:
    """One decoder's input: some dimensions of the residual stream entering one block."""

    layer: int
    """The block whose input (``blocks.{layer}.hook_resid_pre``) is read; 0 is the embeddings."""
    half: Half
    """Which dimensions: ``low``, ``high``, ``random`` (seeded) or ``full``."""

    @classmethod
    def parse(cls, text: str) -> Readout:
        """``"3:low"`` -> ``Readout(3, "low")``."""
        layer, _, half = text.partition(":")
        if not layer.strip().isdigit() or half not in HALVES:
            raise StudyConfigError(
                f"readout {text!r} is not LAYER:HALF; write e.g. '3:low', with HALF one of {', '.join(HALVES)}"
            )
        return cls(int(layer), half)  # type: ignore[arg-type]  # checked against HALVES above

    @property
    def name(self) -> str:
        return f"L{self.layer} {self.half}"

    def dims(self, d_model: int, seed: int) -> Int[torch.Tensor, " n"]:
        """The dimensions read, in increasing order."""
        half = d_model // 2
        if self.half == "low":
            return torch.arange(half)
        if self.half == "high":
            return torch.arange(half, d_model)
        if self.half == "random":
            return torch.randperm(d_model, generator=torch.Generator().manual_seed(seed))[:half].sort().values
        return torch.arange(d_model)

    @property
    def hook(self) -> str:
        """The hook it reads: the residual stream entering block ``layer``."""
        return f"blocks.{self.layer}.hook_resid_pre"


@dataclass(frozen=True)
class WhispersConfig:
    """How the whispers study reads the model, trains its decoders and scores them."""

    readouts: tuple[str, ...] = ("3:low", "3:high", "3:random", "3:full", "6:low", "6:full")
    """The decoders, one per ``LAYER:HALF``, all trained from one model forward per step; the first is the reference."""
    context_size: int = 32
    """Tokens per context, BOS included; the decoders read every position after BOS and predict the token
    there."""
    batch_contexts: int = 16
    """Contexts per training step (one model forward for all of them and every readout)."""
    steps: int = 600
    """Training steps: Adam, a linear warm-up over the first tenth (at most 100 steps), then cosine decay to
    a tenth of ``lr``."""
    lr: float = 1e-3
    """Peak learning rate."""
    d_decoder: int = 128
    """Width of each decoder (its residual stream; the blocks' MLPs are four times as wide)."""
    decoder_layers: int = 2
    """Non-causal transformer blocks per decoder."""
    decoder_heads: int = 4
    """Attention heads per block (must divide ``d_decoder``)."""
    vocab_size: int = 4096
    """The decoders' vocabulary: the training text's ``vocab_size - 1`` most frequent tokens plus one
    "other" class, which a guess never is (the held-out tokens outside it cannot be recovered)."""
    test_documents: int = 8
    """Documents held out for testing (drawn with the seed); the decoders never see their text."""
    test_contexts: int = 256
    """Held-out contexts scored: the unit the bootstrap resamples, so the intervals are over
    contexts, not over correlated tokens."""
    examples: int = 3
    """Held-out contexts shown with their sampled reconstructions."""
    n_samples: int = 10
    """Sampled guesses of each example's input, per readout ("given an input, sample ten input-guesses")."""
    temperature: float = 1.0
    """Sampling temperature of the guesses (0: the argmax)."""
    n_boot: int = 1000
    """Bootstrap resamples of the held-out contexts for every 95% interval (the same resamples for
    every readout, so the differences are paired)."""
    seed: int = 0
    """Seeds the document split, the context order, the random half, the decoders and the samples."""
    checkpoint_every: int = 200
    """Steps between checkpoints when an output folder is given (0: only at the end, or when stopped
    early)."""
    threads: int | None = None
    """torch CPU threads while training and scoring (None: 1 or 2, whichever runs the first batch's model
    forward faster, measured at the start; on a busy machine a second thread can make a step several times
    slower). Not part of a run's identity, so a run resumes under another count (bit for bit under the same
    count; another count may round a few sums differently)."""

    def __post_init__(self) -> None:
        parsed = self.parsed_readouts()
        if not parsed or len(set(parsed)) != len(parsed):
            raise StudyConfigError(
                f"readouts {list(self.readouts)}: give at least one, each LAYER:HALF once (e.g. ('3:low', '3:high'))"
            )
        for name, low in _MINIMA.items():
            if getattr(self, name) < low:
                raise StudyConfigError(f"{name} must be at least {low}, got {getattr(self, name)}")
        if self.d_decoder % self.decoder_heads:
            raise StudyConfigError(
                f"decoder_heads={self.decoder_heads} does not divide d_decoder={self.d_decoder}; pick a divisor"
            )
        if not self.lr > 0 or not self.temperature >= 0:
            raise StudyConfigError(
                f"lr must be > 0 and temperature >= 0, got lr={self.lr}, temperature={self.temperature}"
            )
        if self.threads is not None and self.threads < 1:
            raise StudyConfigError(f"threads must be at least 1 (or None: measured), got {self.threads}")
        if self.examples > self.test_contexts:
            raise StudyConfigError(f"examples={self.examples} is more than test_contexts={self.test_contexts}")

    def parsed_readouts(self) -> list[Readout]:
        return [Readout.parse(r) for r in self.readouts]

    def lr_at(self, step: int) -> float:
        """Linear warm-up over the first tenth (at most 100 steps), then cosine decay to ``lr / 10``."""
        warm = min(100, max(1, self.steps // 10))
        if step < warm:
            return self.lr * (step + 1) / warm
        t = (step - warm) / max(1, self.steps - warm)
        return self.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed: every setting but ``threads`` (it changes no number)."""
        return {k: v for k, v in self.to_json().items() if k != "threads"}
