"""Figures of direct logit attribution: each head's contribution (heatmap) and each layer's (bars)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from circuitscope.report.figures import NUMBER_FORMAT, round_numbers

if TYPE_CHECKING:
    from circuitscope.analysis.dla import DLAResult

__all__ = ["plot_heads", "plot_layers"]


def plot_heads(result: DLAResult) -> object:
    """Heatmap of each head's direct contribution (layer x head), mean over all prompts."""
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Heatmap(
            z=result.heads.tolist(),
            x=[str(h) for h in range(result.heads.shape[1])],
            y=[str(i) for i in range(result.heads.shape[0])],
            colorscale="RdBu",
            zmid=0,
            colorbar={"title": "logit diff", "tickformat": NUMBER_FORMAT},
            hovertemplate="L%{y}H%{x}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title="Direct logit attribution by head (mean over all prompts)", xaxis_title="head", yaxis_title="layer",
        yaxis={"autorange": "reversed"}, height=max(320, 22 * result.heads.shape[0] + 120),
    )  # fmt: skip
    return fig


def plot_layers(result: DLAResult) -> object:
    """Bars of each layer's attention and MLP contribution."""
    import plotly.graph_objects as go

    layers = [str(i) for i in range(result.attn.shape[0])]
    fig = go.Figure(
        [
            go.Bar(x=layers, y=result.attn.tolist(), name="attention"),
            go.Bar(x=layers, y=result.mlp.tolist(), name="MLP"),
        ]
    )
    fig.update_layout(
        title=f"Direct logit attribution by layer (mean over all prompts; total logit diff {result.total:.3f})",
        xaxis_title="layer", yaxis_title="contribution to logit diff", barmode="group", height=360,
    )  # fmt: skip
    fig.update_traces(hovertemplate="layer %{x}: %{y:.3f}")
    return round_numbers(fig)
