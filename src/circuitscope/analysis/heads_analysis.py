"""The heads analysis: what kind of head each attention head is, and which heads compose.

:func:`heads_analysis` runs the component detectors (previous-token, duplicate-token and
induction on repeated random tokens, in one forward pass per batch; copying and
copy-suppression from the OV circuits), optionally the composition scores, and records an
example attention pattern of each detector's top heads. The heads report draws it as a
self-contained HTML page; :meth:`HeadsAnalysis.to_dict` gives the numbers for ``--json``.
Given a text (:attr:`HeadsConfig.text`), it also measures each head's ablation importance on
that text and the max-activating examples of the top heads (:mod:`circuitscope.analysis.heads_text`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from circuitscope.analysis._heads import HeadScores, many_detector_scores, repeated_tokens_for_model
from circuitscope.analysis.composition import CompositionScores, composition_scores
from circuitscope.analysis.copying import CopyingConfig, ov_copying
from circuitscope.analysis.heads_text import (
    TextAnalysis,
    TextConfig,
    text_analysis,
    text_corpus,
    text_to_dict,
)
from circuitscope.errors import require_at_least
from circuitscope.progress import OnProgress, stage, stages

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = [
    "DETECTOR_NAMES",
    "HeadExample",
    "HeadsAnalysis",
    "HeadsConfig",
    "heads_analysis",
]

DETECTOR_NAMES = ("previous_token", "duplicate_token", "induction", "copying", "copy_suppression")
"""The detectors the report runs, in the order it shows them."""

EXAMPLE_SENTENCE = "When Mary and John went to the store, John gave a drink to"
"""Real-text example for the OV detectors (copying heads attend to the names here)."""


# Same shape as src/circuitscope/tasks/generate.py:TaskConfig on purpose: a frozen config whose fields are
# checked in __post_init__, each with its own bounds and message; the checks have nothing in common to share.
@dataclass(frozen=True)
class HeadsConfig:
    """Settings of :func:`heads_analysis`."""

    seq_len: int = 32
    """Length of each half of the repeated random token sequences (cut to fit the context)."""
    batch: int = 8
    """Number of repeated random sequences the attention detectors average over."""
    top: int = 5
    """Heads listed per detector, and composition pairs per mode."""
    composition: bool = True
    """Also compute Q/K/V composition scores."""
    copying: CopyingConfig = field(default_factory=CopyingConfig)
    """How the OV copying scores are measured."""
    seed: int = 0
    """Seed of the random tokens."""
    example_len: int = 10
    """Half length of the repeated random tokens the example patterns are drawn on."""
    text: TextConfig | None = None
    """Also measure head-ablation importance and max-activating examples on this text (None: skip)."""

    def __post_init__(self) -> None:
        require_at_least(self, ("seq_len", "batch", "top", "example_len"), prefix="HeadsConfig.")
        if self.seq_len < 2:
            raise ValueError(f"HeadsConfig.seq_len must be at least 2 (a repeat needs two tokens), got {self.seq_len}")


# Same shape as src/circuitscope/analysis/experts.py:LayerRouting on purpose: two unrelated results, each field
# with its docstring (the house style); there is no logic in them to share.
@dataclass(frozen=True)
class HeadExample:
    """One head's attention pattern on one example sequence."""

    layer: int
    """The head's layer."""
    head: int
    """Its index in the layer."""
    detector: str
    """The detector whose top head this is."""
    score: float
    """Its score on that detector."""
    source: str
    """What the example is: ``repeated random tokens`` or ``a short sentence``."""
    tokens: list[str]
    """The example's tokens (as text)."""
    pattern: list[list[float]]
    """Attention pattern, query x key."""


@dataclass(frozen=True)
class HeadsAnalysis:
    """Everything the heads report shows."""

    model_name: str
    """As given on the command line."""
    n_layers: int
    """Layers of the model."""
    n_heads: int
    """Query heads per layer."""
    scores: dict[str, HeadScores]
    """Per detector name (:data:`DETECTOR_NAMES`), its ``[n_layers, n_heads]`` scores."""
    composition: CompositionScores | None
    """Q/K/V composition scores, or None if not asked for."""
    examples: list[HeadExample]
    """The top head of each detector on an example sequence."""
    config: HeadsConfig
    """The settings the analysis ran with."""
    seconds: dict[str, float]
    """Wall-clock time of each stage."""
    text: TextAnalysis | None = None
    """Ablation importance and max-activating examples on ``config.text``, or None without a text."""

    def top(self, name: str, k: int | None = None) -> list[tuple[int, int, float]]:
        return self.scores[name].top(k or self.config.top)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: each detector's ``[n_layers][n_heads]`` scores under its name, ``top`` lists, composition."""
        out: dict[str, Any] = {"model": self.model_name, "n_layers": self.n_layers, "n_heads": self.n_heads}
        for name, result in self.scores.items():
            out[name] = result.scores.tolist()
        out["top"] = {
            name: [{"layer": la, "head": h, "score": s} for la, h, s in self.top(name)] for name in self.scores
        }
        out["details"] = {
            name: {k: v for k, v in r.to_dict().items() if k != "scores"} for name, r in self.scores.items()
        }
        if self.composition is not None:
            comp = self.composition
            out["composition"] = {
                "baseline": comp.baseline,
                "baseline_theory": comp.baseline_theory,
                "top": {
                    mode: [
                        {"from": [la, ha], "to": [lb, hb], "score": s}
                        for la, ha, lb, hb, s in comp.top(mode, self.config.top)  # type: ignore[arg-type]
                    ]
                    for mode in ("q", "k", "v")
                },
            }
        else:
            out["composition"] = None
        out.update(text_to_dict(self.text, self.scores, self.config.top))
        out["config"] = {
            "seq_len": self.config.seq_len,
            "batch": self.config.batch,
            "top": self.config.top,
            "seed": self.config.seed,
            "copying_k": self.config.copying.k,
            "copying_n_tokens": self.config.copying.n_tokens,
            "copying_candidates": self.config.copying.candidates,
        }
        out["seconds"] = self.seconds
        return out


def _str_tokens(model: HookedModel, tokens: torch.Tensor) -> list[str]:
    if model.tokenizer is None:
        return [str(int(t)) for t in tokens]
    return [str(t) for t in model.to_str_tokens(tokens, prepend_bos=False)]


def _examples(model: HookedModel, scores: dict[str, HeadScores], config: HeadsConfig) -> list[HeadExample]:
    """The top head of each detector, with its pattern on repeated random tokens (real text for OV detectors)."""
    repeated = repeated_tokens_for_model(model, config.example_len, 1, config.seed + 1)[0]
    sentence = None
    if model.tokenizer is not None:
        ids = model.tok.encode(EXAMPLE_SENTENCE)
        if len(ids) <= model.cfg.n_ctx:
            sentence = torch.tensor(ids, dtype=torch.long)
    chosen: dict[str, tuple[int, int, float, torch.Tensor]] = {}
    for name, result in scores.items():
        layer, head, score = result.top(1)[0]
        tokens = sentence if name in ("copying", "copy_suppression") and sentence is not None else repeated
        chosen[name] = (layer, head, score, tokens)
    out = []
    for tokens in {id(t): t for *_, t in chosen.values()}.values():
        layers = sorted({la for la, _, _, t in chosen.values() if t is tokens})
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens[None], names=[f"blocks.{la}.attn.hook_pattern" for la in layers])
        labels = _str_tokens(model, tokens)
        for name, (la, h, score, t) in chosen.items():
            if t is tokens:
                pattern = cache[f"blocks.{la}.attn.hook_pattern"][0, h].float().cpu()
                source = "repeated random tokens" if tokens is repeated else "a short sentence"
                rounded = [[round(x, 5) for x in row] for row in pattern.tolist()]
                out.append(HeadExample(la, h, name, score, source, labels, rounded))
    order = {name: i for i, name in enumerate(scores)}
    return sorted(out, key=lambda e: order[e.detector])


@contextmanager
def _stage(
    name: str, on_progress: OnProgress | None, seconds: dict[str, float] | None = None, key: str = ""
) -> Iterator[None]:
    """:func:`~circuitscope.progress.stage`, timed in ``seconds[key]``."""
    start = time.perf_counter()
    with stage(name, on_progress):
        yield
    if seconds is not None:
        seconds[key] = time.perf_counter() - start


def heads_analysis(
    model: HookedModel,
    model_name: str,
    config: HeadsConfig | None = None,
    on_progress: OnProgress | None = None,
) -> HeadsAnalysis:
    """Run every detector (and composition, and the text measurements) on ``model``.

    ``on_progress(stage, done, total)`` is told each stage as it starts and ends (``0`` then ``1`` of ``1``),
    and the counts of the text measurements (forward passes, batches) inside their stage (default: a
    progress bar per stage on stderr).
    """
    if on_progress is None:  # one display for all the stages: the text's counts run inside a stage of their own
        with stages() as report:
            return heads_analysis(model, model_name, config, report)
    config = config or HeadsConfig()
    seconds: dict[str, float] = {}
    corpus = None
    if config.text is not None:  # read the text first: a bad source fails before the long work
        with _stage(f"reading the text ({config.text.source})", on_progress, seconds, "text_read"):
            corpus = text_corpus(model, config.text)
    with _stage("attention detectors on repeated random tokens", on_progress, seconds, "attention_detectors"):
        tokens = repeated_tokens_for_model(model, config.seq_len, config.batch, config.seed)
        scores: dict[str, HeadScores] = dict(many_detector_scores(model, tokens, batch_size=config.batch))
    with _stage("copying scores from the OV circuits", on_progress, seconds, "copying"):
        scores["copying"], scores["copy_suppression"] = ov_copying(model, config.copying)
    composition = None
    if config.composition:
        with _stage("composition scores", on_progress, seconds, "composition"):
            composition = composition_scores(model)
    start = time.perf_counter()
    examples = _examples(model, scores, config)
    seconds["examples"] = time.perf_counter() - start
    scores = {name: scores[name] for name in DETECTOR_NAMES}
    text = None
    if config.text is not None:
        with _stage(f"head ablation and max-activating examples on {config.text.source}", on_progress):
            text = text_analysis(model, scores, config.text, on_progress, corpus)
        seconds.update({f"text_{stage}": s for stage, s in text.seconds.items() if stage != "text"})
    return HeadsAnalysis(
        model_name=model_name,
        n_layers=model.cfg.n_layers,
        n_heads=model.cfg.n_heads,
        scores=scores,
        composition=composition,
        examples=examples,
        config=config,
        seconds=seconds,
        text=text,
    )
