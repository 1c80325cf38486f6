"""The figure shapes several reports share: a diverging layer-by-component heatmap."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

__all__ = ["layer_heatmap"]


def layer_heatmap(
    z: list[list[Any]],
    x: list[str],
    y: list[str],
    *,
    colorbar: str,
    hovertemplate: str,
    title: str,
    xaxis_title: str,
    yaxis_title: str = "layer",
    min_height: int = 300,
    pad: int = 120,
) -> Figure:
    """Rows (layers) top to bottom, red-blue centred on 0, ``max(min_height, 22 * rows + pad)`` pixels high."""
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Heatmap(z=z, x=x, y=y, colorscale="RdBu", zmid=0, colorbar={"title": colorbar}, hovertemplate=hovertemplate)
    )
    fig.update_layout(
        title=title,
        xaxis_title=xaxis_title,
        yaxis_title=yaxis_title,
        yaxis={"autorange": "reversed"},
        height=max(min_height, 22 * len(z) + pad),
        margin={"l": 60, "r": 20, "t": 50, "b": 60},
    )
    return fig
