"""The heads report: what kind of head each attention head is, and which heads compose.

:func:`heads_analysis` runs the component detectors (previous-token, duplicate-token and
induction on repeated random tokens, in one forward pass per batch; copying and
copy-suppression from the OV circuits), optionally the composition scores, and records an
example attention pattern of each detector's top heads. :func:`heads_report` draws it as a
self-contained HTML page; :meth:`HeadsAnalysis.to_dict` gives the numbers for ``--json``.
Given a text (:attr:`HeadsConfig.text`), it also measures each head's ablation importance on
that text and the max-activating examples of the top heads (:mod:`circuitscope.report.heads_text`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from circuitscope.analysis.composition import CompositionScores, composition_scores, plot_composition
from circuitscope.analysis.copying import CopyingConfig, ov_copying
from circuitscope.analysis.heads import HeadScores, many_detector_scores, plot_head_scores, random_repeated_tokens
from circuitscope.report.heads_text import (
    ProgressFn,
    TextAnalysis,
    TextConfig,
    add_text_sections,
    text_analysis,
    text_corpus,
    text_to_dict,
)
from circuitscope.report.html import Report

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

    from circuitscope.core.hooked_model import HookedModel

__all__ = [
    "DETECTOR_NAMES",
    "HeadExample",
    "HeadsAnalysis",
    "HeadsConfig",
    "heads_analysis",
    "heads_report",
    "plot_pattern",
]

DETECTOR_NAMES = ("previous_token", "duplicate_token", "induction", "copying", "copy_suppression")
"""The detectors the report runs, in the order it shows them."""

EXAMPLE_SENTENCE = "When Mary and John went to the store, John gave a drink to"
"""Real-text example for the OV detectors (copying heads attend to the names here)."""

StatusFn = Callable[[str], None]


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
        for name in ("seq_len", "batch", "top", "example_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"HeadsConfig.{name} must be at least 1, got {getattr(self, name)}")
        if self.seq_len < 2:
            raise ValueError(f"HeadsConfig.seq_len must be at least 2 (a repeat needs two tokens), got {self.seq_len}")


@dataclass(frozen=True)
class HeadExample:
    """One head's attention pattern on one example sequence."""

    layer: int
    head: int
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
    n_heads: int
    scores: dict[str, HeadScores]
    """Per detector name (:data:`DETECTOR_NAMES`), its ``[n_layers, n_heads]`` scores."""
    composition: CompositionScores | None
    """Q/K/V composition scores, or None if not asked for."""
    examples: list[HeadExample]
    """The top head of each detector on an example sequence."""
    config: HeadsConfig
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
    repeated = random_repeated_tokens(model, config.example_len, 1, config.seed + 1)[0]
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


def heads_analysis(
    model: HookedModel,
    model_name: str,
    config: HeadsConfig | None = None,
    status: StatusFn | None = None,
    progress: ProgressFn | None = None,
) -> HeadsAnalysis:
    """Run every detector (and composition, and the text measurements) on ``model``.

    ``status(message)`` is told each stage as it starts; ``progress(stage, done, total)`` is
    told the progress of the text measurements (forward passes, batches).
    """
    config = config or HeadsConfig()
    say = status or (lambda _message: None)
    seconds: dict[str, float] = {}
    corpus = None
    if config.text is not None:  # read the text first: a bad source fails before the long work
        start = time.perf_counter()
        say(f"reading the text ({config.text.source})")
        corpus = text_corpus(model, config.text)
        seconds["text_read"] = time.perf_counter() - start
    start = time.perf_counter()
    say("attention detectors on repeated random tokens")
    tokens = random_repeated_tokens(model, config.seq_len, config.batch, config.seed)
    scores: dict[str, HeadScores] = dict(many_detector_scores(model, tokens, batch_size=config.batch))
    seconds["attention_detectors"] = time.perf_counter() - start
    start = time.perf_counter()
    say("copying scores from the OV circuits")
    copying, suppression = ov_copying(model, config.copying)
    scores["copying"], scores["copy_suppression"] = copying, suppression
    seconds["copying"] = time.perf_counter() - start
    composition = None
    if config.composition:
        start = time.perf_counter()
        say("composition scores")
        composition = composition_scores(model)
        seconds["composition"] = time.perf_counter() - start
    start = time.perf_counter()
    examples = _examples(model, scores, config)
    seconds["examples"] = time.perf_counter() - start
    scores = {name: scores[name] for name in DETECTOR_NAMES}
    text = None
    if config.text is not None:
        say(f"head ablation and max-activating examples on {config.text.source}")
        text = text_analysis(model, scores, config.text, progress, corpus)
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


def plot_pattern(example: HeadExample) -> Figure:
    """Heatmap of one head's attention pattern (query rows, key columns), tokens numbered to keep repeats apart."""
    import plotly.graph_objects as go

    labels = [f"{i}:{t}" for i, t in enumerate(example.tokens)]
    z = example.pattern
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=labels,
            zmin=0,
            zmax=1,
            colorscale="Blues",
            colorbar={"title": "attention"},
            hovertemplate="query %{y} → key %{x}: %{z:.3f}<extra></extra>",
        )
    )
    n = len(labels)
    fig.update_layout(
        title=f"L{example.layer}H{example.head} ({example.detector.replace('_', '-')} score {example.score:.3f})",
        xaxis_title="key",
        yaxis_title="query",
        yaxis={"autorange": "reversed"},
        height=min(900, 240 + 18 * n),
        margin={"t": 50},
    )
    return fig


_DESCRIPTIONS = {
    "previous_token": "attention from each position to the one before it",
    "duplicate_token": "attention to earlier copies of the current token",
    "induction": "attention to the token after an earlier copy of the current token (repeated random tokens)",
    "copying": "fraction of tokens whose own logit is in the top k of the head's OV output",
    "copy_suppression": "fraction of tokens whose own logit is in the bottom k of the head's OV output",
}


def heads_report(analysis: HeadsAnalysis) -> Report:
    """The analysis as a self-contained HTML report (write it with ``.write(path)``)."""
    cfg = analysis.config
    text = analysis.text
    on_text = f" · ablation and examples on {text.corpus.tokens.numel()} tokens of text" if text is not None else ""
    report = Report(
        f"Attention heads of {analysis.model_name}",
        f"{analysis.n_layers} layers x {analysis.n_heads} heads · repeated random tokens of 2 x {cfg.seq_len}, "
        f"{cfg.batch} sequences · OV scores on {cfg.copying.n_tokens} sampled tokens, k = {cfg.copying.k}{on_text}",
    )
    kpis = {
        name.replace("_", "-"): f"L{la}H{h} · {s:.2f}" for name in analysis.scores for la, h, s in analysis.top(name, 1)
    }
    if text is not None:
        la, h, s = text.ablation.top(1)[0]
        kpis[f"{text.ablation.method}-ablation Δloss"] = f"L{la}H{h} · {s:+.3f}"
    report.add_kpis("Top head of each kind", kpis)
    rows = []
    for name in analysis.scores:
        for rank, (la, h, s) in enumerate(analysis.top(name), start=1):
            rows.append([name, rank, f"L{la}H{h}", s])
    report.add_table(
        "Top heads per detector",
        ["detector", "rank", "head", "score"],
        rows,
        caption="; ".join(f"{n}: {d}" for n, d in _DESCRIPTIONS.items()),
    )
    for name, result in analysis.scores.items():
        caption = _DESCRIPTIONS[name]
        baseline = getattr(result, "baseline", None)
        if isinstance(baseline, float):
            caption += f"; a random head scores about {baseline:.4f}"
        report.add_figure(f"{name.replace('_', '-')} scores", plot_head_scores(result), caption)
    for example in analysis.examples:
        report.add_figure(
            f"Example pattern: top {example.detector.replace('_', '-')} head L{example.layer}H{example.head}",
            plot_pattern(example),
            f"Attention pattern on {example.source} (query rows, key columns).",
        )
    if text is not None:
        add_text_sections(report, text, analysis.scores, cfg.top)
    comp = analysis.composition
    if comp is not None:
        rows = []
        for mode in ("q", "k", "v"):
            for la, ha, lb, hb, s in comp.top(mode, cfg.top):  # type: ignore[arg-type]
                rows.append([mode.upper(), f"L{la}H{ha}", f"L{lb}H{hb}", s, comp.baseline[mode], comp.baseline_theory])
        report.add_table(
            "Strongest composition pairs",
            ["mode", "writer", "reader", "score", "empirical baseline", "1/sqrt(d_model)"],
            rows,
            caption="Elhage et al. 2021: ||M_A M_B||_F / (||M_A||_F ||M_B||_F); the baselines are random Gaussian "
            "heads of the same shapes and 1/sqrt(d_model).",
        )
        report.add_figure("K-composition", plot_composition(comp, "k"))
    report.add_table(
        "Run time",
        ["stage", "seconds"],
        [[stage, round(s, 2)] for stage, s in analysis.seconds.items()],
    )
    return report
