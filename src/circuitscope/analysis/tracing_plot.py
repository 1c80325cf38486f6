"""Plots of causal traces: ROME-style layer x token heatmaps, head heatmaps, top neurons."""

from __future__ import annotations

from typing import Any

from circuitscope.analysis.tracing_results import HeadTraceResult, NeuronTraceResult, TraceBaseline, TraceResult

__all__ = ["plot_heads", "plot_neurons", "plot_trace", "token_labels"]

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
    import plotly.graph_objects as go

    effect = result.indirect_effect
    z = [[None if v != v else v for v in row] for row in effect.tolist()]  # NaN (layer not traced) -> gap
    at = ", ".join(token_labels(result.baseline)[p] for p in result.positions[:4])
    more = " ..." if len(result.positions) > 4 else ""
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[str(h) for h in range(effect.shape[1])],
            y=[str(la) for la in range(effect.shape[0])],
            colorscale="RdBu",
            zmid=0,
            colorbar={"title": "effect"},
            hovertemplate="layer %{y} head %{x}<br>effect %{z:+.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title or f"Restoring single heads (attn.hook_z) at {at}{more}",
        xaxis_title="head",
        yaxis_title="layer",
        yaxis={"autorange": "reversed"},
        height=max(320, 22 * effect.shape[0] + 140),
        margin={"l": 60, "r": 20, "t": 50, "b": 60},
    )
    return fig


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
