"""The causal-tracing report: ROME-style layer x token heatmaps, head heatmaps and top neurons of a factual
prompt, as figures and as one self-contained HTML page; and the page of a fact set (:func:`facts_report`)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from circuitscope.analysis.tracing_facts import FactTraceResult
from circuitscope.analysis.tracing_results import (
    HeadTraceResult,
    NeuronTraceResult,
    TraceBaseline,
    TraceResult,
    strongest_cells,
)
from circuitscope.errors import ShapeError
from circuitscope.report.figures import layer_heatmap
from circuitscope.report.html import Report, token_html

__all__ = [
    "facts_report",
    "plot_fact_effects",
    "plot_heads",
    "plot_neurons",
    "plot_trace",
    "token_labels",
    "trace_report",
]

_COLORS = {"resid": "Purples", "mlp": "Greens", "attn": "Reds"}
_NAMES = {"resid": "hidden state (resid_post)", "mlp": "MLP output", "attn": "attention output"}


def token_labels(baseline: TraceBaseline) -> list[str]:
    """One unique label per token, ``"3 ' Tower'*"``: position, token, ``*`` on the subject's tokens."""
    start, stop = baseline.subject_range
    return [f"{i} {t!r}{'*' if start <= i < stop else ''}" for i, t in enumerate(baseline.tokens)]


def plot_trace(result: TraceResult, title: str | None = None) -> Any:
    """Probability of the target with each (token, layer) restored; the colour scale starts at the corrupted run."""
    import plotly.graph_objects as go

    base = result.baseline
    labels = token_labels(base)
    z = result.restored.T.tolist()  # [pos, layer]: tokens down the y axis, as in ROME's figures
    effect = result.indirect_effect.T.tolist()
    layers = list(range(result.restored.shape[0]))
    window = f", window {result.window}" if result.kind != "resid" else ""
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=layers,
            y=labels,
            customdata=effect,
            colorscale=_COLORS.get(result.kind, "Viridis"),
            zmin=min(base.corrupted_prob, float(result.restored.min())),
            colorbar={"title": f"p({base.target.strip() or base.target!r})"},
            hovertemplate="layer %{x}<br>token %{y}<br>p %{z:.4f}<br>effect %{customdata:+.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title or f"Restoring the {_NAMES.get(result.kind, result.kind)}{window} ({base.corruption} corruption)",
        xaxis_title="layer (single restored layer)" if result.kind == "resid" else "centre layer of the window",
        yaxis={"autorange": "reversed", "type": "category"},
        height=max(320, 26 * len(labels) + 140),
        margin={"l": 160, "r": 20, "t": 50, "b": 60},
    )
    return fig


def plot_heads(result: HeadTraceResult, title: str | None = None) -> Any:
    """Indirect effect of restoring each head's output alone, ``[layer, head]``."""
    effect = result.indirect_effect
    z = [[None if v != v else v for v in row] for row in effect.tolist()]  # NaN (layer not traced) -> gap
    at = ", ".join(token_labels(result.baseline)[p] for p in result.positions[:4])
    more = " ..." if len(result.positions) > 4 else ""
    return layer_heatmap(
        z,
        [str(h) for h in range(effect.shape[1])],
        [str(la) for la in range(effect.shape[0])],
        colorbar="effect",
        hovertemplate="layer %{y} head %{x}<br>effect %{z:+.4f}<extra></extra>",
        title=title or f"Restoring single heads (attn.hook_z) at {at}{more}",
        xaxis_title="head",
        min_height=320,
        pad=140,
    )


def plot_neurons(result: NeuronTraceResult, title: str | None = None) -> Any:
    """Indirect effect of the top restored neurons (bars)."""
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Bar(
            x=[f"N{n}" for n, _ in result.top],
            y=[e for _, e in result.top],
            hovertemplate="neuron %{x}<br>effect %{y:+.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title or f"Layer {result.layer}: neurons with the largest indirect effect",
        xaxis_title="neuron",
        yaxis_title="indirect effect (probability)",
        height=360,
        margin={"l": 60, "r": 20, "t": 50, "b": 60},
    )
    return fig


def _baseline(
    traces: Sequence[TraceResult], heads: HeadTraceResult | None, neurons: NeuronTraceResult | None
) -> TraceBaseline:
    for r in (*traces, heads, neurons):
        if r is not None:
            return r.baseline
    raise ShapeError("a trace report needs at least one trace: pass traces, heads or neurons")


def _add_runs_and_prompt(report: Report, base: TraceBaseline) -> None:
    """The clean and corrupted runs as KPIs, and the prompt with its subject shaded."""
    kpis = {
        "target": repr(base.target),
        "p clean": f"{base.clean_prob:.4f}",
        "p corrupted": f"{base.corrupted_prob:.4f}",
        "corruption": base.corruption,
        "samples": str(base.n_samples),
    }
    report.add_kpis("Clean and corrupted runs", kpis)
    start, stop = base.subject_range
    values = [1.0 if start <= i < stop else 0.0 for i in range(len(base.tokens))]
    report.add_html(
        "Prompt (subject shaded)",
        f"<p>{token_html(base.tokens, values, 1.0)}</p>"
        f'<p class="caption">Subject tokens {start}..{stop - 1} are corrupted; the probability of '
        f"{html.escape(repr(base.target))} is measured after the last token.</p>",
    )


def trace_report(
    model_name: str,
    traces: Sequence[TraceResult],
    heads: HeadTraceResult | None = None,
    neurons: NeuronTraceResult | None = None,
    seconds: float | None = None,
) -> Report:
    """The report: KPIs, the prompt with its subject, one heatmap per trace, heads and neurons if given."""
    base: TraceBaseline = _baseline(traces, heads, neurons)
    corruption = (
        f"Gaussian noise, std {base.noise_std:.4g} at hook_embed"
        if base.noise_std is not None
        else "resampled subjects: " + ", ".join(repr(s) for s in base.replacement_subjects)
    )
    report = Report(
        f"Causal trace: {base.subject!r} -> {base.target!r}",
        f"{model_name} · {base.n_samples} samples · {corruption}"
        + (f" · {seconds:.0f} s" if seconds is not None else ""),
    )
    _add_runs_and_prompt(report, base)
    labels = token_labels(base)
    for result in traces:
        report.add_figure(
            f"Restored {result.kind}" + (f" (window {result.window})" if result.kind != "resid" else ""),
            plot_trace(result),
            "Each cell: probability of the target when the clean state at that token and layer is put back "
            "into the corrupted run (mean over samples). Tokens marked * are the subject.",
        )
        rows: list[list[object]] = [[la, labels[p], e] for la, p, e in strongest_cells(result, 8)]
        report.add_table(f"Strongest {result.kind} restorations", ["layer", "token", "indirect effect"], rows)
    if heads is not None:
        report.add_figure(
            "Single attention heads",
            plot_heads(heads),
            "Indirect effect of restoring one head's output (attn.hook_z) at the tokens named in the title.",
        )
        report.add_table(
            "Heads with the largest effect", ["layer", "head", "indirect effect"], [list(t) for t in heads.top(10)]
        )
    if neurons is not None:
        report.add_figure(
            f"Single MLP neurons, layer {neurons.layer}",
            plot_neurons(neurons),
            f"{len(neurons.neurons)} neurons restored one at a time (mlp.hook_post) at "
            + ", ".join(labels[p] for p in neurons.positions)
            + ".",
        )
    return report


def plot_fact_effects(results: Sequence[FactTraceResult]) -> Any:
    """Mean indirect effect over the facts, by layer, at the subject's last token and at the last token."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for result in results:
        for where, effect in (("subject's last token", result.subject_last_effect), ("last token", result.last_effect)):
            fig.add_trace(
                go.Scatter(
                    x=list(range(effect.shape[1])),
                    y=effect.mean(0).tolist(),
                    mode="lines+markers",
                    name=f"{result.kind} at the {where}",
                    line={"dash": "solid" if where == "last token" else "dot"},
                )
            )
    fig.update_layout(
        title=f"Mean indirect effect over {len(results[0].traces)} facts",
        xaxis_title="layer (centre of the window for mlp and attn)",
        yaxis_title="indirect effect (probability)",
        height=420,
        margin={"l": 60, "r": 20, "t": 50, "b": 60},
    )
    return fig


def facts_report(model_name: str, results: Sequence[FactTraceResult], seconds: float | None = None) -> Report:
    """The report of a fact set: the mean effects by layer, one row per fact, and each fact's heatmaps."""
    if not results or not results[0].traces:
        raise ShapeError("a fact-set report needs at least one kind traced over at least one fact")
    first = results[0].traces
    report = Report(
        f"Causal tracing over {len(first)} facts",
        f"{model_name} · {first[0].baseline.n_samples} samples · {first[0].baseline.corruption} corruption"
        + (f" · {seconds:.0f} s" if seconds is not None else ""),
    )
    report.add_figure(
        "Mean indirect effect by layer",
        plot_fact_effects(results),
        "Probability of each fact's object restored by putting back one clean state, minus the corrupted run's, "
        "averaged over the facts: at the subject's last token (dotted) and at the prompt's last token.",
    )
    rows: list[list[object]] = []
    for i, trace in enumerate(first):
        base = trace.baseline
        layer, pos, effect = strongest_cells(trace, 1)[0]
        rows.append(
            [i, base.subject, base.target, base.clean_prob, base.corrupted_prob, layer, base.tokens[pos], effect]
        )
    columns = ["fact", "subject", "target", "p clean", "p corrupted", "layer", "token", "indirect effect"]
    report.add_table(f"Each fact ({first[0].kind}: its strongest restoration)", columns, rows)
    for i, traces in enumerate(zip(*(r.traces for r in results), strict=True)):
        for trace in traces:
            report.add_figure(f"Fact {i}: {trace.baseline.subject!r}, restored {trace.kind}", plot_trace(trace))
    return report
