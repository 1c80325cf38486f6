"""Figures of the logit lens: the answer's logit difference and probability by layer, and the top token per cell."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from circuitscope.analysis._logit_lens import LogitLensResult

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
    fig.update_layout(title="Logit lens at the answer position", xaxis_title="residual stream before block", height=380)
    fig.update_yaxes(title_text="logit difference", secondary_y=False)
    fig.update_yaxes(title_text="probability", secondary_y=True, range=[0, 1])
    return fig


def plot_top_tokens(result: LogitLensResult) -> object:
    """Top decoded token per layer and position for the first prompt (colour: its probability)."""
    import plotly.graph_objects as go

    text = [[row[0] for row in layer] for layer in result.top_tokens]
    fig = go.Figure(
        go.Heatmap(
            z=result.top_probs[..., 0].tolist(),
            x=[f"{t!r}·{i}" for i, t in enumerate(result.str_tokens)],
            y=result.layers,
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": "top-1<br>prob"},
        )
    )
    fig.update_layout(
        title="Logit lens: top token at every layer and position (first prompt)",
        yaxis={"autorange": "reversed"},
        height=max(320, 24 * len(result.layers) + 120),
    )
    return fig
