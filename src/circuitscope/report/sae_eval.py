"""Figures of an SAE evaluation: the latents' firing-frequency histogram."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from circuitscope.sae.evaluate import SAEEvalResult

__all__ = ["plot_frequency_histogram"]


def plot_frequency_histogram(result: SAEEvalResult) -> Any:
    """Plotly bar chart of latents per log10 firing frequency."""
    import plotly.graph_objects as go

    edges = result.histogram_edges
    centers = ((edges[:-1] + edges[1:]) / 2).tolist()
    fig = go.Figure(go.Bar(x=centers, y=result.histogram_counts.tolist(), marker_color="#3558d4"))
    fig.update_layout(
        title=f"Latent firing frequency ({result.dead_fraction:.1%} dead over {result.frequency_tokens:,} tokens)",
        xaxis_title="log10 firing frequency",
        yaxis_title="latents",
        height=320,
        margin=dict(l=50, r=20, t=50, b=40),
    )
    return fig
