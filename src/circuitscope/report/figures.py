"""The figure shapes several reports share: a diverging layer-by-component heatmap, rounded number
formats, and the names of a score grid's components (for hover labels)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

__all__ = ["NUMBER_FORMAT", "component_names", "layer_heatmap", "round_numbers", "titled"]

NUMBER_FORMAT = ".3~r"
"""d3 format of tick and hover numbers: three significant digits, trailing zeros dropped (0.25, 1.2, 340)."""


def round_numbers(fig: Figure) -> Figure:
    """Round the numeric axes' ticks and hover values (category axes are left as they are)."""
    fig.update_xaxes(tickformat=NUMBER_FORMAT, hoverformat=NUMBER_FORMAT)
    fig.update_yaxes(tickformat=NUMBER_FORMAT, hoverformat=NUMBER_FORMAT)
    return fig


def titled(fig: Figure, title: str, x: str, y: str | None = None, **layout: Any) -> Figure:
    """``fig`` with its title and axis titles set (and any other ``layout`` keywords): how a figure ends."""
    fig.update_layout(title=title, xaxis_title=x, **({} if y is None else {"yaxis_title": y}), **layout)
    return fig


def component_names(axes: tuple[str, ...], labels: dict[str, list[str]]) -> list[str]:
    """One name per component of a 2-axis score grid, in row-major (flattened) order:
    ``L3H1`` for ``(layer, head)``, ``L3 'tok'·4`` for ``(layer, pos)``, ``L3 <axis> <label>`` otherwise."""
    first, second = axes
    rows, cols = labels[first], labels[second]
    if (first, second) == ("layer", "head"):
        return [f"L{r}H{c}" for r in rows for c in cols]
    if (first, second) == ("layer", "pos"):
        return [f"L{r} {c}" for r in rows for c in cols]
    return [f"{first} {r} {second} {c}" for r in rows for c in cols]


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
    fig.update_traces(colorbar={"tickformat": NUMBER_FORMAT})
    return fig
