"""The superposition lab's figures and HTML report: feature directions, WᵀW, norms and superposition,
feature dimensionality, the phase diagram and interference."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from circuitscope.report.html import Report
from circuitscope.toy.superposition_lab import GeometryResult, PhaseDiagram, SuperpositionLab, SweepResult

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

__all__ = [
    "plot_directions",
    "plot_feature_dimensionality",
    "plot_gram",
    "plot_interference",
    "plot_norms",
    "plot_phase_diagram",
    "superposition_report",
]

CLUSTERS = (1.0, 0.75, 2 / 3, 0.5, 0.4, 0.375)


def plot_directions(sweep: SweepResult) -> Figure:
    """Each feature's direction W_i in the 2-D hidden space, one panel per sparsity."""
    from plotly.subplots import make_subplots

    n = len(sweep.sparsities)
    fig = make_subplots(rows=1, cols=n, subplot_titles=[f"S = {s}" for s in sweep.sparsities])
    for col, W in enumerate(sweep.W, start=1):
        for i in range(sweep.n_features):
            shade = 0.25 + 0.75 * float(sweep.importance[i] / sweep.importance[0])
            fig.add_scatter(
                x=[0, float(W[0, i])],
                y=[0, float(W[1, i])],
                mode="lines+markers",
                row=1,
                col=col,
                line={"color": f"rgba(40,60,160,{shade:.2f})", "width": 3},
                showlegend=False,
                name=f"feature {i}",
                hovertemplate=f"feature {i}<extra></extra>",
            )
        fig.update_xaxes(range=[-1.5, 1.5], row=1, col=col, showticklabels=False)
        fig.update_yaxes(range=[-1.5, 1.5], row=1, col=col, showticklabels=False, scaleanchor=f"x{col}")
    fig.update_layout(title="feature directions W_i (darker = more important)", height=300)
    return fig


def plot_gram(sweep: SweepResult) -> Figure:
    """W^T W per sparsity."""
    from plotly.subplots import make_subplots

    n = len(sweep.sparsities)
    fig = make_subplots(rows=1, cols=n, subplot_titles=[f"S = {s}" for s in sweep.sparsities])
    for col, W in enumerate(sweep.W, start=1):
        fig.add_heatmap(z=(W.T @ W).tolist(), zmin=-1, zmax=1, colorscale="RdBu", row=1, col=col, showscale=col == n)
        fig.update_yaxes(autorange="reversed", row=1, col=col)
    fig.update_layout(title="WᵀW", height=300)
    return fig


def plot_norms(sweep: SweepResult) -> Figure:
    """||W_i|| per feature, coloured by superposition (dark: alone in its direction; yellow: shared)."""
    from plotly.subplots import make_subplots

    n = len(sweep.sparsities)
    fig = make_subplots(rows=1, cols=n, subplot_titles=[f"S = {s}" for s in sweep.sparsities], shared_yaxes=True)
    for col in range(n):
        sup = sweep.superposition[col].clamp(0, 1).tolist()
        fig.add_bar(
            x=sweep.norms[col].tolist(),
            y=list(range(sweep.n_features)),
            orientation="h",
            row=1,
            col=col + 1,
            marker={"color": sup, "colorscale": "Viridis", "cmin": 0, "cmax": 1},
            showlegend=False,
        )
    fig.update_yaxes(autorange="reversed", title_text="feature (by importance)", row=1, col=1)
    fig.update_layout(
        title=f"{sweep.n_features} features in {sweep.n_hidden} dimensions: ||W_i|| "
        "(colour: superposition Σ_j≠i (Ŵ_i·W_j)²)",
        height=420,
    )
    return fig


def plot_feature_dimensionality(geometry: GeometryResult) -> Figure:
    """D* against 1/(1-S) (plateau at 1/2) and every feature's D_i, with the paper's clusters."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=["dimensions per feature D*", "feature dimensionality D_i"])
    fig.add_scatter(
        x=geometry.inverse_density, y=geometry.dimensions_per_feature, mode="lines+markers", name="D*", row=1, col=1
    )
    xs, ys = [], []
    for k, x in enumerate(geometry.inverse_density):
        d = geometry.feature_dimensionality[k]
        d = d[d > 0.05]
        xs += [x] * d.numel()
        ys += d.tolist()
    fig.add_scatter(x=xs, y=ys, mode="markers", marker={"size": 4, "opacity": 0.35}, name="D_i", row=1, col=2)
    for c in CLUSTERS:
        fig.add_hline(y=c, line_dash="dot", line_color="grey", row=1, col=2)  # type: ignore[arg-type]
    fig.add_hline(y=0.5, line_dash="dot", line_color="red", row=1, col=1)  # type: ignore[arg-type]
    fig.update_xaxes(type="log", title_text="1 / (1 - S)")
    fig.update_layout(title=f"geometry: {geometry.n_features} features in {geometry.n_hidden} dimensions", height=420)
    return fig


def plot_phase_diagram(phases: PhaseDiagram) -> Figure:
    import plotly.graph_objects as go

    codes = {"not represented": 0, "dedicated": 1, "superposition": 2}
    z = [[codes[p] for p in row] for row in phases.phase]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=phases.density,
            y=phases.relative_importance,
            text=phases.phase,
            zmin=0,
            zmax=2,
            colorscale=[[0, "#e5e5e5"], [0.5, "#457b9d"], [1, "#e63946"]],
            showscale=False,
            hovertemplate="density %{x:.3g}, importance %{y:.3g}: %{text}<extra></extra>",
        )
    )
    fig.update_xaxes(type="log", title_text="feature density 1 - S")
    fig.update_yaxes(type="log", title_text="relative importance of feature 2")
    fig.update_layout(title="n = 2, m = 1: grey not represented, blue dedicated dimension, red superposition")
    return fig


def plot_interference(small: SweepResult, medium: SweepResult, geometry: GeometryResult) -> Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, xs, items in (
        (f"{small.n_features}→{small.n_hidden}", [1 / (1 - s) for s in small.sparsities], small.interference),
        (f"{medium.n_features}→{medium.n_hidden}", [1 / (1 - s) for s in medium.sparsities], medium.interference),
        (f"{geometry.n_features}→{geometry.n_hidden}", geometry.inverse_density, geometry.interference),
    ):
        fig.add_scatter(x=xs, y=[i.max_abs_cos for i in items], name=f"{label} max |cos|", mode="lines+markers")
        fig.add_scatter(x=xs, y=[i.mean_abs_cos for i in items], name=f"{label} mean |cos|", line={"dash": "dot"})
        fig.add_scatter(
            x=xs,
            y=[i.random_max_abs_cos for i in items],
            name=f"{label} random max |cos|",
            line={"dash": "dash"},
            opacity=0.5,
        )
    fig.update_xaxes(type="log", title_text="1 / (1 - S)")
    fig.update_layout(
        title="interference between represented features vs. random directions (JL scale)", yaxis_title="|cos|"
    )
    return fig


def _angles(W: Any) -> list[float]:
    """Sorted angles (degrees) of the represented directions of a 2-D W."""
    keep = W.norm(dim=0) > 0.5
    return sorted(
        round(math.degrees(math.atan2(float(W[1, i]), float(W[0, i]))), 1) for i in range(W.shape[1]) if keep[i]
    )


def _paper_and_run(lab: SuperpositionLab) -> list[list[str]]:
    """One row per claim of the paper: what it reports and what this lab measured."""
    small, medium, g = lab.small, lab.medium, lab.geometry
    dense, sparse = small.n_represented()[0], small.n_represented()[-1]
    plateau = [d for x, d in zip(g.inverse_density, g.dimensions_per_feature, strict=True) if 3 <= x <= 20]
    clusters = g.cluster_fractions()
    phase_counts = {
        k: sum(row.count(k) for row in lab.phases.phase) for k in ("not represented", "dedicated", "superposition")
    }
    return [
        [
            f"{small.n_features}→{small.n_hidden}, dense (S = {small.sparsities[0]})",
            "the 2 most important features, orthogonal; the rest dropped",
            f"{dense} features represented; angles {_angles(small.W[0])}°",
        ],
        [
            f"{small.n_features}→{small.n_hidden}, sparse (S = {small.sparsities[-1]})",
            "all 5 features in superposition (a pentagon; antipodal pairs on the way)",
            f"{sparse} features represented; angles {_angles(small.W[-1])}°",
        ],
        [
            f"{medium.n_features}→{medium.n_hidden}, importance 0.7^i",
            "dense: 5 features, no superposition; sparser: more features, increasingly in superposition",
            f"features represented per sparsity: {medium.n_represented()}",
        ],
        [
            "D* over 1/(1-S) from 1 to 20",
            "falls from 1 and sticks at 1/2 (antipodal pairs) over a range",
            f"D* from {g.dimensions_per_feature[0]:.3f} to {g.dimensions_per_feature[-1]:.3f}; mean over "
            f"1/(1-S) in [3, 20]: {sum(plateau) / max(len(plateau), 1):.3f}",
        ],
        [
            "feature dimensionalities D_i",
            "cluster at 1, 3/4, 2/3, 1/2, 2/5, 3/8",
            ", ".join(f"{k}: {v:.0%}" for k, v in clusters.items()) + " of represented features (±0.04)",
        ],
        [
            "phase diagram (n = 2, m = 1)",
            "not represented / dedicated dimension / superposition, "
            "superposition at low density and comparable importance",
            ", ".join(f"{k}: {v} cells" for k, v in phase_counts.items()),
        ],
    ]


def superposition_report(lab: SuperpositionLab) -> Report:
    small, medium, g = lab.small, lab.medium, lab.geometry
    report = Report(
        title="Toy models of superposition",
        subtitle=f"x' = ReLU(WᵀWx + b); AdamW lr 1e-3, batch 1024, {lab.steps} steps, seed {lab.seed}",
    )
    report.add_table("The paper and this run", ["", "Elhage et al. 2022", "this run"], _paper_and_run(lab))
    report.add_figure(f"{small.n_features} features in {small.n_hidden} dimensions", plot_directions(small))
    report.add_figure("WᵀW", plot_gram(small))
    report.add_figure(f"{medium.n_features} features in {medium.n_hidden} dimensions", plot_norms(medium))
    report.add_figure(
        "Geometry: dimensions per feature",
        plot_feature_dimensionality(g),
        "Dotted lines on the right: the paper's clusters 1, 3/4, 2/3, 1/2, 2/5, 3/8.",
    )
    report.add_figure("Phase diagram", plot_phase_diagram(lab.phases))
    report.add_figure(
        "Interference",
        plot_interference(small, medium, g),
        "Max and mean |cos| between directions of represented features (||W_i|| > 0.5), beside "
        "as many random directions in the same dimension.",
    )
    return report
