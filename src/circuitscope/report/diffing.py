"""The model-diff report: per-token loss of two models, the contexts where they differ most, per-layer CKA,
per-head attention difference, weight difference by component and the interpolation path."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from circuitscope.report.head_grid import head_heatmap
from circuitscope.report.html import Report, token_html

if TYPE_CHECKING:
    from circuitscope.diffing.interpolation import Interpolation
    from circuitscope.diffing.loss import LossDiff
    from circuitscope.diffing.similarity import AttentionDiff, LayerCKA
    from circuitscope.diffing.weights import WeightDiff

__all__ = ["diff_report", "plot_attention_diff", "plot_cka", "plot_interpolation", "plot_loss_diff", "plot_weight_diff"]


def plot_loss_diff(result: LossDiff, text_index: int = 0):  # -> plotly Figure
    """Loss of A and B along one text, with their difference."""
    import plotly.graph_objects as go

    toks = result.str_tokens[text_index][1:]
    x = list(range(1, len(toks) + 1))
    hover = [repr(t) for t in toks]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=result.loss_a[text_index].tolist(), name="A", hovertext=hover, mode="lines"))
    fig.add_trace(go.Scatter(x=x, y=result.loss_b[text_index].tolist(), name="B", hovertext=hover, mode="lines"))
    fig.add_trace(
        go.Bar(x=x, y=result.diff[text_index].tolist(), name="B - A", hovertext=hover, opacity=0.5, yaxis="y2")
    )
    fig.update_layout(
        title=f"per-token loss, text {text_index}",
        xaxis_title="token position",
        yaxis_title="loss (nats)",
        yaxis2=dict(title="B - A", overlaying="y", side="right"),
        height=420,
    )
    return fig


def plot_cka(result: LayerCKA):  # -> plotly Figure
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=result.layers, y=result.cka.tolist(), mode="lines+markers"))
    fig.update_layout(title="linear CKA of the residual stream, A vs B", xaxis_title="layer", yaxis_title="CKA",
                      yaxis_range=[0, 1.02], height=380)  # fmt: skip
    return fig


def plot_attention_diff(result: AttentionDiff):  # -> plotly Figure
    fig = head_heatmap(result.distance, colorscale="Reds", hover="TV distance", zmin=0)
    fig.update_layout(title="attention-pattern difference per head (total variation)", height=480)
    return fig


def plot_weight_diff(result: WeightDiff):  # -> plotly Figure
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Bar(
            x=result.components,
            y=result.relative,
            hovertext=[f"|ΔW| {d:.4g}, |W_A| {a:.4g}" for d, a in zip(result.diff_norm, result.norm_a, strict=True)],
        )
    )
    fig.update_layout(
        title="relative weight difference |W_B - W_A| / |W_A| by component",
        yaxis_title="relative difference",
        height=420,
    )
    return fig


def plot_interpolation(result: Interpolation):  # -> plotly Figure
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss along the path", "cross-task linearity (cosine)"))
    fig.add_trace(go.Scatter(x=result.alphas, y=result.loss.tolist(), mode="lines+markers", name="loss"), 1, 1)
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[result.loss_a, result.loss_b], mode="lines", name="linear", line=dict(dash="dot")), 1, 1
    )
    fig.add_trace(
        go.Heatmap(
            z=result.linearity.tolist(),
            x=[f"L{i}" for i in range(result.linearity.shape[1])],
            y=[f"{a:g}" for a in result.alphas],
            colorscale="Viridis",
            zmax=1,
            hovertemplate="alpha %{y}, %{x}: cosine %{z:.4f}<extra></extra>",
        ),
        1,
        2,
    )
    fig.update_xaxes(title_text="alpha (0 = A, 1 = B)", row=1, col=1)
    fig.update_yaxes(title_text="alpha", type="category", row=1, col=2)
    fig.update_layout(height=420)
    return fig


def diff_report(
    a: str,
    b: str,
    source: str,
    n_chunks: int,
    loss: LossDiff,
    top: int,
    cka: LayerCKA | None = None,
    attention: AttentionDiff | None = None,
    weights: WeightDiff | None = None,
    interpolation: Interpolation | None = None,
) -> Report:
    """The report of ``circuitscope diff``: model ``a`` against ``b`` on ``n_chunks`` chunks of ``source``.

    The per-layer comparisons are shown when ``cka``, ``attention`` and ``weights`` are all given (the
    models share a shape), and the interpolation path when ``interpolation`` is.
    """
    ld = loss
    report = Report("Model diff", f"A = {a} · B = {b} · {n_chunks} chunks of {source}")
    report.add_kpis(
        "Loss",
        {
            "A (nats/token)": f"{ld.mean_a:.4f}",
            "B (nats/token)": f"{ld.mean_b:.4f}",
            "B - A": f"{ld.mean_b - ld.mean_a:+.4f}",
            "tokens": str(sum(d.numel() for d in ld.diff)),
        },
    )
    report.add_figure("Per-token loss (first chunk)", plot_loss_diff(ld))
    rows = []
    for c in ld.top_contexts(top):
        values = [0.0] * len(c.tokens)
        values[c.focus] = c.diff
        rows.append(
            f"<tr><td class='num'>{c.diff:+.3f}</td><td class='num'>{c.loss_a:.3f}</td>"
            f"<td class='num'>{c.loss_b:.3f}</td><td>{token_html(c.tokens, values)}</td></tr>"
        )
    report.add_html(
        "Contexts where the models differ most",
        "<table><thead><tr><th>B - A</th><th>loss A</th><th>loss B</th><th>context</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table><p class='caption'>"
        + html.escape("Shaded token: the one predicted; blue means B has the higher loss, red that A has.")
        + "</p>",
    )
    if cka is not None and attention is not None and weights is not None:
        report.add_figure("Residual-stream similarity per layer (linear CKA)", plot_cka(cka))
        report.add_figure("Attention-pattern difference per head", plot_attention_diff(attention))
        report.add_figure("Weight difference by component", plot_weight_diff(weights))
    else:
        report.add_text("Per-layer comparisons", "Skipped: the models differ in shape (layers, heads or widths).")
    if interpolation is not None:
        report.add_figure("Weight interpolation", plot_interpolation(interpolation))
    return report
