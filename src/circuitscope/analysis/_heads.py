"""Attention-head detectors: previous-token, duplicate-token, induction, and any expected pattern.

Every detector is one definition. For each query position ``q`` an *expected set* of key
positions is a function of the tokens; a head's score is the attention mass it puts on that
set, averaged over every (sequence, query) whose set is not empty:

- previous-token: ``{q - 1}``;
- duplicate-token: the earlier positions holding the same token as ``q``;
- induction: the positions ``k <= q`` right after an earlier occurrence of ``q``'s token
  (``tokens[k - 1] == tokens[q]``, ``k - 1 < q``): where an induction head looks to copy
  what came next last time.

A score lies in [0, 1]; 1 means the head attends only to the expected set. The induction score
is usually measured on repeated random tokens (:func:`repeated_random_tokens`), as in the
induction-heads literature (Elhage et al. 2021, Olsson et al. 2022), where no other mechanism
can predict the second half. Patterns are reduced as the forward pass runs, so no layer's
attention pattern is ever stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Bool, Float, Int

from circuitscope.analysis._top import top_cells
from circuitscope.core.capabilities import require_attention
from circuitscope.engine.batching import batch_slices
from circuitscope.engine.grid import AxisName, ScoreGrid
from circuitscope.errors import ShapeError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = [
    "DETECTORS",
    "Detector",
    "ExpectedPattern",
    "HeadScores",
    "detector_scores",
    "duplicate_token_pattern",
    "duplicate_token_scores",
    "induction_pattern",
    "induction_scores",
    "many_detector_scores",
    "previous_token_pattern",
    "previous_token_scores",
    "repeated_random_tokens",
    "repeated_tokens_for_model",
]

ExpectedPattern = Callable[[Int[torch.Tensor, "batch pos"]], Bool[torch.Tensor, "batch query_pos key_pos"]]
"""A function of the tokens giving, for each query position, the key positions a head 'should' attend to."""


@dataclass(frozen=True, kw_only=True)
class HeadScores(ScoreGrid):
    """One detector's score for every head, on axes ``("layer", "head")``."""

    name: str
    """Detector name (``previous_token``, ``duplicate_token``, ``induction``, ``copying``, ... or a user's)."""
    scores: Float[torch.Tensor, "layer head"]
    """Each head's score in [0, 1]; for attention detectors the mean attention mass on the expected positions."""
    n_queries: int
    """Number of samples averaged: (sequence, query position) pairs, or sampled tokens for OV scores."""
    axes: tuple[AxisName, ...] = ("layer", "head")
    """Always ``("layer", "head")``."""
    labels: dict[str, list[str]] = field(default_factory=dict)
    """Layer and head indices as text (filled from the shape of ``scores`` when not given)."""
    metric: str = ""
    """What the scores measure: the detector's name unless given."""
    clean_value: None = None
    """A detector has no clean run."""
    corrupted_value: None = None
    """A detector has no corrupted run."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.labels:
            n_layers, n_heads = self.scores.shape
            labels = {"layer": [str(i) for i in range(n_layers)], "head": [str(i) for i in range(n_heads)]}
            object.__setattr__(self, "labels", labels)  # frozen: the default depends on the scores' shape
        if not self.metric:
            object.__setattr__(self, "metric", self.name)

    def top(self, k: int = 5) -> list[tuple[int, int, float]]:
        """The ``k`` highest-scoring heads as (layer, head, score)."""
        return top_cells(self.scores, k)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"name": ..., "scores": [[...] per layer]}``."""
        return {"name": self.name, "scores": self.scores.tolist(), "n_queries": self.n_queries}


# ---------------------------------------------------------------------------- expected patterns
def _causal(tokens: torch.Tensor) -> torch.Tensor:
    n = tokens.shape[1]
    return torch.ones(n, n, dtype=torch.bool, device=tokens.device).tril()[None]


def previous_token_pattern(tokens: Int[torch.Tensor, "batch pos"]) -> Bool[torch.Tensor, "batch pos pos"]:
    """Query ``q`` expects key ``q - 1``."""
    n = tokens.shape[1]
    eye = torch.zeros(n, n, dtype=torch.bool, device=tokens.device)
    eye[torch.arange(1, n), torch.arange(0, n - 1)] = True
    return eye[None].expand(tokens.shape[0], n, n)


def duplicate_token_pattern(tokens: Int[torch.Tensor, "batch pos"]) -> Bool[torch.Tensor, "batch pos pos"]:
    """Query ``q`` expects the earlier positions ``k < q`` with ``tokens[k] == tokens[q]``."""
    same = tokens[:, :, None] == tokens[:, None, :]  # [batch, q, k]
    strictly_before = _causal(tokens) & ~torch.eye(tokens.shape[1], dtype=torch.bool, device=tokens.device)[None]
    return same & strictly_before


def induction_pattern(tokens: Int[torch.Tensor, "batch pos"]) -> Bool[torch.Tensor, "batch pos pos"]:
    """Query ``q`` expects the keys ``k`` (1 <= k <= q) whose previous token equals ``tokens[q]``."""
    batch, n = tokens.shape
    previous = torch.full_like(tokens, -1)
    previous[:, 1:] = tokens[:, :-1]  # previous[k] = tokens[k - 1]
    match = tokens[:, :, None] == previous[:, None, :]  # [batch, q, k]
    return match & _causal(tokens) & (previous[:, None, :] >= 0).expand(batch, n, n)


# ---------------------------------------------------------------------------- the detector
DETECTORS: dict[str, ExpectedPattern] = {
    "previous_token": previous_token_pattern,
    "duplicate_token": duplicate_token_pattern,
    "induction": induction_pattern,
}
"""The built-in attention detectors by name."""


def detector_scores(
    model: HookedModel,
    tokens: Int[torch.Tensor, "batch pos"],
    expected: ExpectedPattern,
    name: str = "custom",
    batch_size: int = 16,
) -> HeadScores:
    """Every head's mean attention mass on the positions ``expected(tokens)`` marks.

    Queries with an empty expected set are left out of the average. Padding is the caller's
    business: pass sequences of equal length (or an ``expected`` that marks nothing on padding).
    """
    return many_detector_scores(model, tokens, {name: expected}, batch_size)[name]


def many_detector_scores(
    model: HookedModel,
    tokens: Int[torch.Tensor, "batch pos"],
    detectors: dict[str, ExpectedPattern] | None = None,
    batch_size: int = 16,
) -> dict[str, HeadScores]:
    """:func:`detector_scores` of several detectors (default: :data:`DETECTORS`) from one forward pass per batch."""
    require_attention(model.cfg, "head detectors (attention patterns)")
    detectors = DETECTORS if detectors is None else detectors
    if tokens.ndim != 2:
        raise ShapeError(f"tokens must be [batch, pos], got shape {tuple(tokens.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not detectors:
        raise ValueError("no detectors given: pass a dict {name: expected_pattern}")
    cfg = model.cfg
    total = {name: torch.zeros(cfg.n_layers, cfg.n_heads, dtype=torch.float64) for name in detectors}
    n_queries = dict.fromkeys(detectors, 0)
    for rows in batch_slices(tokens.shape[0], batch_size):
        chunk = tokens[rows].to(model.device)
        weights: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for name, expected in detectors.items():
            mask = expected(chunk)
            if mask.shape != (chunk.shape[0], chunk.shape[1], chunk.shape[1]):
                raise ShapeError(
                    f"expected pattern of {name!r} has shape {tuple(mask.shape)}, "
                    f"needs [batch, pos, pos] = {(chunk.shape[0], chunk.shape[1], chunk.shape[1])}"
                )
            valid = mask.any(-1)  # [batch, q]
            n_queries[name] += int(valid.sum())
            weights[name] = (mask.to(torch.float32), valid)

        def reduce(pattern: torch.Tensor, hook: Any, weights: dict = weights) -> None:
            # pattern: [batch, head, q, k]
            p = pattern.float()
            for name, (w, valid) in weights.items():
                mass = (p * w[:, None]).sum(-1)  # [batch, head, q]
                total[name][hook.layer] += (mass * valid[:, None]).sum((0, 2)).double().cpu()

        with torch.no_grad(), model.hooks([("blocks.*.attn.hook_pattern", reduce)]):
            model(chunk)
    for name, n in n_queries.items():
        if n == 0:
            raise ShapeError(f"detector {name!r}: no query position has an expected key in these tokens")
    return {
        name: HeadScores(name=name, scores=(total[name] / n_queries[name]).float(), n_queries=n_queries[name])
        for name in detectors
    }


def repeated_random_tokens(
    d_vocab: int,
    seq_len: int,
    batch: int,
    generator: torch.Generator | None = None,
    bos: int | None = None,
    low: int = 0,
) -> Int[torch.Tensor, "batch pos"]:
    """``[BOS] r r``: random tokens in [low, d_vocab) of length ``seq_len``, repeated once."""
    if seq_len < 1 or batch < 1 or d_vocab - low < 2:
        raise ValueError("repeated_random_tokens needs seq_len >= 1, batch >= 1 and at least two token ids")
    half = torch.randint(low, d_vocab, (batch, seq_len), generator=generator)
    tokens = torch.cat([half, half], dim=1)
    if bos is not None:
        tokens = torch.cat([torch.full((batch, 1), bos, dtype=tokens.dtype), tokens], dim=1)
    return tokens


def bos_id(model: HookedModel) -> int | None:
    """The BOS id the model's tokenizer prepends, or None (no tokenizer, or no BOS)."""
    if model.tokenizer is None or model.adapter.tokenization != "bos":
        return None
    return getattr(model.tokenizer, "bos_token_id", None)


def first_ordinary_id(model: HookedModel) -> int:
    """The lowest token id random tokens are drawn from: 0 without a tokenizer, else past the special tokens
    at the start of real vocabularies (``min(1000, d_vocab // 10)``)."""
    return 0 if model.tokenizer is None else min(1000, model.cfg.d_vocab // 10)


def repeated_tokens_for_model(model: HookedModel, seq_len: int = 50, batch: int = 16, seed: int = 0) -> torch.Tensor:
    """The default detector input for ``model``: ``[BOS] r r`` with ``r`` of ``seq_len`` random ordinary tokens
    (shortened to fit the context), BOS if the model's tokenizer prepends one.

    :func:`repeated_random_tokens` is the same sequence from a bare vocabulary size and generator."""
    bos = bos_id(model)
    span = min(model.cfg.n_ctx - (bos is not None), 2 * seq_len) // 2
    if span < 2:
        raise ShapeError(f"the model's context ({model.cfg.n_ctx}) is too short for repeated random tokens")
    generator = torch.Generator().manual_seed(seed)
    return repeated_random_tokens(model.cfg.d_vocab, span, batch, generator, bos, first_ordinary_id(model))


@dataclass(frozen=True)
class Detector:
    """A built-in attention detector, called as ``detector(model, tokens=None, *, seq_len=50, batch=16, seed=0)``:
    every head's score on ``tokens`` (``[batch, pos]``), or on repeated random tokens
    (:func:`repeated_tokens_for_model` with ``seq_len``, ``batch`` and ``seed``) when none are given."""

    name: str
    """Its name, a key of :data:`DETECTORS` (the expected pattern)."""
    expects: str
    """Where a head of this kind attends (the first line of its docstring)."""

    def __post_init__(self) -> None:
        if self.name not in DETECTORS:
            raise ValueError(f"no built-in detector {self.name!r}; choose one of {list(DETECTORS)}")
        object.__setattr__(self, "__doc__", f"{self.expects}\n\n{Detector.__doc__}")  # help(detector) says both

    def __call__(
        self,
        model: HookedModel,
        tokens: Int[torch.Tensor, "batch pos"] | None = None,
        *,
        seq_len: int = 50,
        batch: int = 16,
        seed: int = 0,
    ) -> HeadScores:
        tokens = repeated_tokens_for_model(model, seq_len, batch, seed) if tokens is None else tokens
        return detector_scores(model, tokens, DETECTORS[self.name], self.name)


previous_token_scores = Detector("previous_token", "Attention to the previous position.")
duplicate_token_scores = Detector("duplicate_token", "Attention to earlier copies of the current token.")
induction_scores = Detector("induction", "Attention to the token after an earlier copy of the current one.")
