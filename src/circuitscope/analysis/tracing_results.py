"""Causal tracing's configuration and results: :class:`TraceConfig`, :class:`TraceBaseline` and the traces.

The traces are score grids (:class:`~circuitscope.engine.grid.ScoreGrid`) whose scores are the
indirect effects, with ``to_dict`` (= ``to_json``) for JSON; the engine that fills them lives in
:mod:`circuitscope.analysis.tracing`, which re-exports every name here.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypedDict, cast, get_args

import torch
from jaxtyping import Float

from circuitscope.analysis._top import top_cells
from circuitscope.engine.grid import ScoreGrid
from circuitscope.errors import ShapeError
from circuitscope.progress import OnProgress

__all__ = [
    "CORRUPTIONS", "Corruption", "HeadTraceResult", "NeuronTraceResult", "TraceBaseline", "TraceConfig",
    "TraceOptions", "TraceResult", "config_of", "strongest_cells",
]  # fmt: skip

Corruption = Literal["noise", "resample"]
"""How the subject is corrupted: Gaussian noise on its embeddings, or other subjects put in its place."""
CORRUPTIONS: tuple[str, ...] = get_args(Corruption)


@dataclass(frozen=True)
class TraceConfig:
    """How the subject is corrupted and how the work is batched."""

    corruption: Corruption = "noise"
    """``"noise"`` (Gaussian noise on the subject's embeddings) or ``"resample"`` (other subjects)."""
    noise_scale: float = 3.0
    """Noise standard deviation as a multiple of :func:`embedding_std` (ROME uses 3)."""
    n_samples: int = 10
    """Noise samples, or the number of replacement subjects for ``"resample"`` (fewer if fewer fit)."""
    subjects: tuple[str, ...] | None = None
    """Replacement subjects for ``"resample"`` (default: the shipped facts' subjects whose object is not the target)."""
    seed: int = 0
    """Seeds the noise and the choice of replacement subjects."""
    batch_size: int = 256
    """Rows of one forward pass, a row being one noise sample (or replacement subject) with one restoration."""

    def __post_init__(self) -> None:
        if self.corruption not in CORRUPTIONS:
            raise ShapeError(f"unknown corruption {self.corruption!r}; choose one of {CORRUPTIONS}")
        if not (isinstance(self.n_samples, int) and self.n_samples >= 1):
            raise ShapeError(f"n_samples must be an integer >= 1, got {self.n_samples!r}")
        if not (math.isfinite(self.noise_scale) and self.noise_scale >= 0):
            raise ShapeError(f"noise_scale must be a finite number >= 0, got {self.noise_scale!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ShapeError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if self.subjects is not None and not all(isinstance(s, str) and s.strip() for s in self.subjects):
            raise ShapeError("subjects must be non-empty strings")


class TraceOptions(TypedDict, total=False):
    """The keyword options every tracing entry point takes: :class:`TraceConfig`'s fields (each documented
    and defaulted there; ``subjects`` any sequence of strings) and ``on_progress``, called
    ``(stage, done, total)`` as the batches complete (default: a progress bar on a terminal)."""

    corruption: Corruption
    noise_scale: float
    n_samples: int
    subjects: Sequence[str] | None
    seed: int
    batch_size: int
    on_progress: OnProgress | None


def config_of(options: TraceOptions) -> tuple[TraceConfig, OnProgress | None]:
    """The :class:`TraceConfig` of the options (checked there) and their ``on_progress``."""
    given = cast(dict[str, Any], dict(options))
    on_progress = given.pop("on_progress", None)
    if given.get("subjects") is not None:
        given["subjects"] = tuple(given["subjects"])
    return TraceConfig(**given), on_progress


@dataclass(frozen=True)
class TraceBaseline:
    """The prompt, the target and the clean and corrupted runs every trace is measured against."""

    tokens: list[str]
    """The prompt's tokens as strings (BOS included)."""
    token_ids: list[int]
    """The prompt's token ids (BOS included)."""
    subject: str
    """The subject as given (or the decoded subject tokens when given as a span)."""
    subject_range: tuple[int, int]
    """Token positions ``[start, stop)`` of the subject in ``tokens``."""
    target: str
    """The token whose probability is measured."""
    target_id: int
    """Its id."""
    clean_prob: float
    """Probability of the target after the clean prompt."""
    corrupted_prob: float
    """Probability of the target with the subject corrupted (mean over samples)."""
    corrupted_probs: list[float]
    """The same for each sample (noise draw or replacement subject)."""
    corruption: str
    """``"noise"`` or ``"resample"``."""
    noise_std: float | None
    """Standard deviation of the noise added at ``hook_embed`` (None for resampling)."""
    replacement_subjects: list[str]
    """The subjects put in place of the clean one, one per sample (empty for noise)."""
    seed: int
    """The seed used."""

    @property
    def n_samples(self) -> int:
        return len(self.corrupted_probs)

    def to_dict(self) -> dict[str, Any]:
        """Every field (``subject_range`` a list) and ``n_samples``."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**out, "subject_range": list(self.subject_range), "n_samples": self.n_samples}


@dataclass(frozen=True, kw_only=True)
class _Restorations(ScoreGrid, ABC):
    """Restorations measured against one baseline: ``scores`` is the indirect effect of each,
    ``restored - corrupted_prob``; ``clean_value`` / ``corrupted_value`` are the target's clean and
    corrupted probabilities."""

    baseline: TraceBaseline = field(metadata={"json": False})
    """Prompt, target, clean and corrupted probabilities."""
    restored: Float[torch.Tensor, "..."]
    """Probability of the target with the state restored (mean over samples), same shape as ``scores``."""
    metric: str = "prob"
    """The target's probability."""

    @property
    def indirect_effect(self) -> Float[torch.Tensor, "..."]:
        """``restored - corrupted_prob``: the scores."""
        return self.scores

    @abstractmethod
    def _own_json(self) -> dict[str, Any]:
        """The trace's own fields, JSON-ready."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the trace's own fields, the baseline's, ``restored`` and ``indirect_effect``."""
        restored = {"restored": self.restored.tolist(), "indirect_effect": self.indirect_effect.tolist()}
        return {**self._own_json(), **self.baseline.to_dict(), **restored}

    def to_json(self) -> dict[str, Any]:
        """The same as :meth:`to_dict`."""
        return self.to_dict()


@dataclass(frozen=True, kw_only=True)
class TraceResult(_Restorations):
    """A layer x token causal trace of one kind of state: ``scores`` (the indirect effects) on ``("layer", "pos")``."""

    kind: str
    """``"resid"``, ``"mlp"`` or ``"attn"``."""
    window: int
    """Layers restored together (1 for ``"resid"``)."""

    def _own_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "window": self.window}


@dataclass(frozen=True, kw_only=True)
class HeadTraceResult(_Restorations):
    """The effect of restoring each attention head's output alone: ``scores`` on ``("layer", "head")``."""

    positions: list[int]
    """Token positions at which each head's output was restored (together)."""

    def top(self, k: int = 10) -> list[tuple[int, int, float]]:
        """``(layer, head, effect)`` of the k heads with the largest indirect effect."""
        return top_cells(self.indirect_effect, k)

    def _own_json(self) -> dict[str, Any]:
        return {
            "positions": self.positions,
            "top": [{"layer": la, "head": h, "effect": e} for la, h, e in self.top(10)],
        }


@dataclass(frozen=True, kw_only=True)
class NeuronTraceResult(_Restorations):
    """The effect of restoring single MLP neurons of one layer: ``scores`` on ``("neuron",)``, one per ``neurons``."""

    layer: int
    """The layer whose neurons were restored."""
    positions: list[int]
    """Token positions at which each neuron was restored (together)."""
    neurons: list[int]
    """The neurons restored, in the order of ``restored``."""
    top: list[tuple[int, float]] = field(default_factory=list)
    """``(neuron, effect)`` of the ``top_k`` neurons with the largest indirect effect."""

    def _own_json(self) -> dict[str, Any]:
        top = [{"neuron": n, "effect": e} for n, e in self.top]
        return {"layer": self.layer, "positions": self.positions, "neurons": self.neurons, "top": top}


def strongest_cells(result: TraceResult, k: int = 5) -> list[tuple[int, int, float]]:
    """``(layer, position, effect)`` of the k (layer, token) restorations with the largest indirect effect."""
    return top_cells(result.indirect_effect, k)
