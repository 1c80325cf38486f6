"""The heads report: detector scores, example patterns, composition, and (given a text) ablation importance
and max-activating examples, as figures and as one self-contained HTML page."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from circuitscope.analysis.heads_text import ABLATION_KIND, TextAnalysis, ablation_rows
from circuitscope.report.html import Report
from circuitscope.report.max_activating import example_html

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

    from circuitscope.analysis import HeadScores
    from circuitscope.analysis.composition import CompositionScores, Mode
    from circuitscope.analysis.head_ablation import HeadAblation
    from circuitscope.analysis.heads_analysis import HeadExample, HeadsAnalysis

__all__ = [
    "add_text_sections",
    "heads_report",
    "plot_composition",
    "plot_head_ablation",
    "plot_head_scores",
    "plot_pattern",
]


def _layer_head_heatmap(z: list[list[float]], title: str, layout: dict[str, Any], **trace: Any) -> Figure:
    """A [layer, head] heatmap: heads across, layers down (layer 0 on top), one tick per head and layer."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(z=z, **trace))
    fig.update_layout(
        title=title,
        xaxis_title="head",
        yaxis_title="layer",
        yaxis={"autorange": "reversed", "dtick": 1},
        xaxis={"dtick": 1},
        height=180 + 40 * len(z),
        **layout,
    )
    return fig


# The two [layer, head] heatmaps' colours, colour bar and hover text.
_SCORES_STYLE: dict[str, Any] = {
    "zmin": 0, "zmax": 1, "colorscale": "Blues", "colorbar": {"title": "score"},
    "hovertemplate": "layer %{y}, head %{x}: %{z:.3f}<extra></extra>",
}  # fmt: skip
_ABLATION_STYLE: dict[str, Any] = {
    "colorscale": "Reds", "colorbar": {"title": "Δ loss"},
    "hovertemplate": "layer %{y}, head %{x}: +%{z:.3f} nats<extra></extra>",
}  # fmt: skip


def plot_head_scores(result: HeadScores, title: str | None = None) -> Figure:
    """Heatmap [layer, head] of one detector's scores."""
    title = title or f"{result.name.replace('_', '-')} score per head"
    return _layer_head_heatmap(result.scores.tolist(), title, {"margin": {"t": 50, "b": 40}}, **_SCORES_STYLE)


def plot_composition(result: CompositionScores, mode: Mode) -> Figure:
    """Heatmap of one mode's scores, rows = earlier heads ``La.Ha``, columns = later heads ``Lb.Hb``."""
    import plotly.graph_objects as go

    s = result.scores(mode)
    n_layers, n_heads = s.shape[:2]
    labels = [f"L{la}H{h}" for la in range(n_layers) for h in range(n_heads)]
    z = s.reshape(n_layers * n_heads, n_layers * n_heads)
    keep_rows = [i for i in range(z.shape[0]) if not bool(z[i].isnan().all())]
    keep_cols = [j for j in range(z.shape[1]) if not bool(z[:, j].isnan().all())]
    grid = z[keep_rows][:, keep_cols]
    text = [[None if math.isnan(x) else x for x in row] for row in grid.tolist()]
    fig = go.Figure(
        go.Heatmap(
            z=text,
            x=[labels[j] for j in keep_cols],
            y=[labels[i] for i in keep_rows],
            colorscale="Viridis",
            zmin=0,
            colorbar={"title": "score"},
            hovertemplate="%{y} → %{x}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"{mode.upper()}-composition (random baseline {result.baseline[mode]:.3f}, "
        f"1/sqrt(d_model) = {result.baseline_theory:.3f})",
        xaxis_title="later head (reads)",
        yaxis_title="earlier head (writes)",
        yaxis={"autorange": "reversed"},
        height=260 + 22 * len(keep_rows),
    )
    return fig


def plot_head_ablation(result: HeadAblation, title: str | None = None) -> Figure:
    """Heatmap [layer, head] of the loss increase."""
    title = title or f"loss increase when each head is {result.method}-ablated (clean {result.clean_loss:.3f})"
    return _layer_head_heatmap(result.loss_increase.tolist(), title, {}, **_ABLATION_STYLE)


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


def _examples_html(text: TextAnalysis, scores: Mapping[str, HeadScores]) -> str:
    parts = []
    increase = text.ablation.loss_increase
    for kind, (layer, head) in text.heads.items():
        label = f"L{layer}H{head}"
        if kind == ABLATION_KIND:
            what = "head whose ablation hurts most"
        else:
            what = f"top {kind.replace('_', '-')} head (score {float(scores[kind].scores[layer, head]):.3f})"
        rows = "".join(
            f"<tr><td class='num'>{e.activation:.4g}</td><td class='num'>{e.doc}:{e.pos}</td>"
            f"<td>{example_html(e)}</td></tr>"
            for e in text.max_activating[label]
        )
        parts.append(
            f"<h3>{html.escape(label)} · {html.escape(what)} · Δloss {float(increase[layer, head]):+.4f}</h3>"
            "<table><thead><tr><th>activation</th><th>context:pos</th><th>tokens (position highlighted)</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>"
        )
    return "\n".join(parts)


def add_text_sections(report: Report, text: TextAnalysis, scores: Mapping[str, HeadScores], top: int) -> None:
    """Ablation heatmap, top heads with their detector scores, and max-activating examples."""
    corpus, ablation = text.corpus, text.ablation
    where = (
        f"{corpus.tokens.shape[0]} contexts of {corpus.tokens.shape[1]} tokens "
        f"({'BOS first, ' if corpus.has_bos else ''}{corpus.tokens.numel()} in all) from {corpus.name}"
    )
    report.add_figure(
        f"Head ablation importance ({ablation.method} ablation)",
        plot_head_ablation(ablation),
        f"Rise of the mean next-token loss (nats per token; clean {ablation.clean_loss:.4f}) when each head alone "
        f"is {ablation.method}-ablated at hook_z, on {where}.",
    )
    names = list(scores)
    rows = []
    for rank, row in enumerate(ablation_rows(text, scores, top), start=1):
        rows.append(
            [
                rank,
                f"L{row['layer']}H{row['head']}",
                row["loss_increase"],
                *[row["scores"][n] for n in names],
                ", ".join(n.replace("_", "-") for n in row["top_in"]) or "none",
            ]
        )
    report.add_table(
        "Heads that matter most on the text",
        ["rank", "head", "Δ loss", *[n.replace("_", "-") for n in names], f"top-{top} head of"],
        rows,
        caption="Heads ordered by the loss increase when ablated, with each detector's score beside it; "
        f"'none' marks an important head that is not among the top {top} of any detector.",
    )
    found = text.max_activating
    report.add_html(
        "Max-activating examples of the top heads",
        _examples_html(text, scores)
        + f"<p class='caption'>The {found.k} positions of the text (of {found.n_positions}, BOS excluded) where "
        "each head writes the largest vector to the residual stream (L2 norm of its output); the position is "
        f"highlighted, {text.config.context[0]} tokens before and {text.config.context[1]} after are shown.</p>",
    )


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
    if analysis.composition is not None:
        _add_composition(report, analysis.composition, cfg.top)
    report.add_table(
        "Run time",
        ["stage", "seconds"],
        [[stage, round(s, 2)] for stage, s in analysis.seconds.items()],
    )
    return report


def _add_composition(report: Report, comp: CompositionScores, top: int) -> None:
    """The ``top`` strongest writer -> reader pairs of each composition mode, and the K-composition heatmap."""
    rows = []
    for mode in ("q", "k", "v"):
        for la, ha, lb, hb, s in comp.top(mode, top):  # type: ignore[arg-type]
            rows.append([mode.upper(), f"L{la}H{ha}", f"L{lb}H{hb}", s, comp.baseline[mode], comp.baseline_theory])
    report.add_table(
        "Strongest composition pairs",
        ["mode", "writer", "reader", "score", "empirical baseline", "1/sqrt(d_model)"],
        rows,
        caption="Elhage et al. 2021: ||M_A M_B||_F / (||M_A||_F ||M_B||_F); the baselines are random Gaussian "
        "heads of the same shapes and 1/sqrt(d_model).",
    )
    report.add_figure("K-composition", plot_composition(comp, "k"))
