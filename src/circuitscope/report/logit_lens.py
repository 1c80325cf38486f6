"""Figures of the logit lens: the answer's logit difference and probability by layer, and the top token per cell."""

from __future__ import annotations

from typing import TYPE_CHECKING

from circuitscope.report.figures import NUMBER_FORMAT

if TYPE_CHECKING:
    from circuitscope.analysis import LogitLensResult

__all__ = ["plot_logit_lens", "plot_top_tokens"]


def plot_logit_lens(result: LogitLensResult) -> object:
    """Logit difference and correct-answer probability by layer."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=result.layers, y=result.logit_diff.tolist(), name="logit diff", mode="lines+markers"))
    fig.add_trace(
        go.Scatter(x=result.layers, y=result.correct_prob.tolist(), name="P(correct)", mode="lines+markers"),
        secondary_y=True,
    )
    fig.update_layout(
        title="Logit lens at the answer position (mean over all prompts)",
        xaxis_title="residual stream before block",
        height=380,
    )
    fig.update_yaxes(title_text="logit difference", secondary_y=False, tickformat=NUMBER_FORMAT)
    fig.update_yaxes(
        title_text="probability", secondary_y=True, range=[0, 1], tickvals=[0, 0.25, 0.5, 0.75, 1], showgrid=False
    )
    fig.update_traces(hovertemplate="%{x}: %{y:.3f}")
    return fig


_CELL_CHARS = 6
"""Characters of a top token written in its cell (longer ones are cut, with ``…``; hover shows all)."""
_CELL_MIN_PROB = 0.2
"""Only cells whose top token has at least this probability get text: a readable subset, not a wall."""


def _cell_text(token: str, prob: float) -> str:
    if prob < _CELL_MIN_PROB:
        return ""
    shown = token.replace("\n", "\\n")
    return shown if len(shown) <= _CELL_CHARS else shown[: _CELL_CHARS - 1] + "…"


def _hover(tokens: list[str], probs: list[float]) -> str:
    return "<br>".join(f"{t!r} {p:.2f}" for t, p in zip(tokens, probs, strict=True))


def plot_top_tokens(result: LogitLensResult, position_labels: list[str] | None = None) -> object:
    """Top decoded token per layer and position for the first prompt (colour: its probability).

    A cell shows its top token (cut to a few characters) when that token is fairly likely
    (p >= 0.2); hovering any cell lists its top tokens with probabilities. ``position_labels``
    (default ``'tok'·i``) name the columns, e.g. with the positions' roles.
    """
    import plotly.graph_objects as go

    probs = result.top_probs.tolist()
    text = [[_cell_text(cell[0], p[0]) for cell, p in zip(layer, lp, strict=True)]
            for layer, lp in zip(result.top_tokens, probs, strict=True)]  # fmt: skip
    hover = [[_hover(cell, p) for cell, p in zip(layer, lp, strict=True)]
             for layer, lp in zip(result.top_tokens, probs, strict=True)]  # fmt: skip
    columns = position_labels or [f"{t!r}·{i}" for i, t in enumerate(result.str_tokens)]
    fig = go.Figure(
        go.Heatmap(
            z=[[p[0] for p in layer] for layer in probs],
            x=columns,
            y=result.layers,
            text=text,
            texttemplate="%{text}",
            textfont={"size": 11},
            customdata=hover,
            hovertemplate="%{y} at %{x}<br>top tokens:<br>%{customdata}<extra></extra>",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": "top-1<br>prob", "tickformat": ".1f"},
        )
    )
    fig.update_layout(
        title="Logit lens: top token at every layer and position (the example prompt)",
        yaxis={"autorange": "reversed", "title": "residual stream before block"},
        xaxis={"tickangle": -45},
        height=max(360, 28 * len(result.layers) + 180),
        margin={"l": 80, "r": 20, "t": 50, "b": 120},
    )
    return fig
