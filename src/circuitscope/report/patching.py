"""Heatmaps and scatters of the causal interventions: activation patching, attribution patching, path patching
and ablation, each drawn from its result object."""

from __future__ import annotations

from typing import TYPE_CHECKING

from circuitscope.report.figures import layer_heatmap, round_numbers

if TYPE_CHECKING:
    import torch

    from circuitscope.analysis import PathPatchingResult
    from circuitscope.analysis.ablation import AblationResult, HeadAblationScan
    from circuitscope.analysis.attribution import AttributionCorrelation, AttributionScores
    from circuitscope.analysis.patching import PatchingResult

__all__ = [
    "plot_ablation",
    "plot_ablation_scan",
    "plot_attribution",
    "plot_attribution_scatter",
    "plot_patching",
    "plot_path_patching",
]


def _summed_over_positions(scores: torch.Tensor, axes: tuple[str, ...]) -> tuple[torch.Tensor, tuple[str, ...]]:
    """A ``[layer, head, pos]`` grid summed over positions (drawn as ``[layer, head]``); other grids as they are."""
    if scores.ndim == 3:
        return scores.sum(-1), axes[:2]
    return scores, axes


def _grid_heatmap(grid: PatchingResult | AttributionScores, colorbar: str, value: str, title: str) -> object:
    """A layer-by-component heatmap of a patching-style grid (``[layer, head, pos]`` summed over positions)."""
    scores, axes = _summed_over_positions(grid.scores, grid.axes)
    return layer_heatmap(
        scores.tolist(),
        grid.labels[axes[1]],
        grid.labels["layer"],
        colorbar=colorbar,
        hovertemplate=f"layer %{{y}}<br>{axes[1]} %{{x}}<br>{value} %{{z:.3f}}<extra></extra>",
        title=title,
        xaxis_title=axes[1],
    )


def plot_patching(result: PatchingResult, title: str | None = None) -> object:
    """A heatmap of the normalised scores (``[layer, head, pos]`` is summed over positions)."""
    default = f"Activation patching: {result.target} ({result.metric}, 0 = corrupted, 1 = clean)"
    return _grid_heatmap(result, "normalised<br>metric", "score", title or default)


def plot_attribution(scores: AttributionScores, title: str | None = None) -> object:
    """A heatmap of the estimated normalised scores (``[layer, head, pos]`` is summed over positions)."""
    default = f"Attribution patching: {scores.target} ({scores.metric}, 0 = corrupted, 1 = clean, first order)"
    return _grid_heatmap(scores, "estimated<br>normalised<br>metric", "estimate", title or default)


def plot_attribution_scatter(
    correlation: AttributionCorrelation, title: str | None = None, names: list[str] | None = None
) -> object:
    """Attribution estimate against activation patching, one point per component, with y = x.

    ``names`` (one per component, in the flattened order of the scores, e.g. from
    :func:`~circuitscope.report.figures.component_names`) are shown on hover.
    """
    import plotly.graph_objects as go

    a, b = correlation.attribution.tolist(), correlation.patching.tolist()
    lo = min(a + b) if a else 0.0
    hi = max(a + b) if a else 1.0
    labels = names if names is not None and len(names) == len(a) else [f"#{i}" for i in range(len(a))]
    fig = go.Figure(
        [
            go.Scatter(
                x=b, y=a, mode="markers", name="component", marker={"size": 6, "opacity": 0.7}, text=labels,
                hovertemplate="%{text}<br>activation patching %{x:.3f}<br>attribution %{y:.3f}<extra></extra>",
            ),
            go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x", line={"dash": "dash", "color": "grey"},
                       hoverinfo="skip"),
        ]
    )  # fmt: skip
    fig.update_layout(
        title=title
        or (
            f"{correlation.target}: attribution vs activation patching "
            f"(Pearson {correlation.pearson:.3f}, Spearman {correlation.spearman:.3f}, n = {correlation.n})"
        ),
        xaxis_title="activation patching (normalised)",
        yaxis_title="attribution patching (normalised)",
        height=450,
        margin={"l": 60, "r": 20, "t": 50, "b": 60},
    )
    return round_numbers(fig)


def plot_path_patching(result: PathPatchingResult, title: str | None = None) -> object:
    """A [sender layer, sender head] heatmap of the path-patching scores."""
    return layer_heatmap(
        result.scores.tolist(),
        result.labels["head"],
        result.labels["layer"],
        colorbar="fraction of<br>corrupted<br>change",
        hovertemplate="sender L%{y}H%{x}<br>score %{z:.3f}<extra></extra>",
        title=title or f"Path patching into {result.receivers} ({result.metric}, 0 = clean, 1 = corrupted)",
        xaxis_title="sender head",
        yaxis_title="sender layer",
    )


def plot_ablation_scan(scan: HeadAblationScan, title: str | None = None) -> object:
    """A [layer, head] heatmap of the metric change."""
    return layer_heatmap(
        scan.change.tolist(),
        scan.labels["head"],
        scan.labels["layer"],
        colorbar=f"{scan.metric}<br>change",
        hovertemplate="L%{y}H%{x}<br>change %{z:.3f}<extra></extra>",
        title=title or f"{scan.method.capitalize()}-ablating each head: change in {scan.metric}",
        xaxis_title="head",
    )


def plot_ablation(result: AblationResult, title: str | None = None) -> object:
    """Per-prompt metric, clean against ablated, with y = x."""
    import plotly.graph_objects as go

    a, b = result.clean.tolist(), result.ablated.tolist()
    lo, hi = min(a + b), max(a + b)
    fig = go.Figure(
        [
            go.Scatter(x=a, y=b, mode="markers", name="prompt", marker={"size": 7, "opacity": 0.8}),
            go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="unchanged", line={"dash": "dash", "color": "grey"}),
        ]
    )
    what = ", ".join(result.components[:4]) + (" ..." if len(result.components) > 4 else "")
    fig.update_layout(
        title=title
        or f"{result.method.capitalize()}-ablating {what}: {result.metric} {result.clean_value:.3f} -> "
        f"{result.ablated_value:.3f}",
        xaxis_title=f"{result.metric}, clean",
        yaxis_title=f"{result.metric}, ablated",
        height=450,
        margin={"l": 60, "r": 20, "t": 50, "b": 60},
    )
    return fig
