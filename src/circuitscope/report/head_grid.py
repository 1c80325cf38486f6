"""The layer x head heatmap of one number per attention head (function-vector effects, attention differences)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

__all__ = ["head_heatmap"]


def head_heatmap(values: torch.Tensor, *, colorscale: str, hover: str, **heatmap: Any) -> Figure:
    """``values`` [layer, head] with rows ``L0, L1, ...`` and columns ``H0, H1, ...``.

    ``hover`` names the value in the hover text (``"%{y}%{x}: <hover> %{z:.4f}"``); the other
    keywords go to the heatmap trace (``zmid=0``, ``zmin=0``, ...).
    """
    import plotly.graph_objects as go

    return go.Figure(
        go.Heatmap(
            z=values.tolist(),
            x=[f"H{h}" for h in range(values.shape[1])],
            y=[f"L{layer}" for layer in range(values.shape[0])],
            colorscale=colorscale,
            hovertemplate=f"%{{y}}%{{x}}: {hover} %{{z:.4f}}<extra></extra>",
            **heatmap,
        )
    )
