"""The steering report and figures: a sweep's effect and damage heatmaps, the best cell, steered
generations, and the function-vector heads' average indirect effect."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from circuitscope.report.head_grid import head_heatmap
from circuitscope.report.html import Report

if TYPE_CHECKING:
    from circuitscope.steering.function_vectors import FunctionVectorResult
    from circuitscope.steering.sweep import SteeringSweep, SweepCell

__all__ = ["plot_function_vector", "plot_sweep", "steering_report"]


def plot_sweep(sweep: SteeringSweep):  # -> plotly Figure
    """Two heatmaps side by side: effect change and damage, layers x coefficients."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    x = [f"{c:g}" for c in sweep.coefficients]
    y = [str(layer) for layer in sweep.layers]
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(f"effect: Δ {sweep.effect_name}", "damage: Δ loss on neutral text (nats/token)"),
        horizontal_spacing=0.14,
    )
    eff = sweep.effect_change
    lim = float(eff.abs().max()) or 1.0
    fig.add_trace(
        go.Heatmap(
            z=eff.tolist(),
            x=x,
            y=y,
            colorscale="RdBu",
            zmid=0,
            zmin=-lim,
            zmax=lim,
            colorbar=dict(x=0.43, len=0.9),
            hovertemplate="layer %{y}, coeff %{x}<br>Δ effect %{z:.3f}<extra></extra>",
        ),
        1,
        1,
    )
    fig.add_trace(
        go.Heatmap(
            z=sweep.damage.tolist(),
            x=x,
            y=y,
            colorscale="Reds",
            zmin=0,
            hovertemplate="layer %{y}, coeff %{x}<br>Δ loss %{z:.3f}<extra></extra>",
        ),
        1,
        2,
    )
    for col in (1, 2):
        fig.update_xaxes(title_text="coefficient", type="category", row=1, col=col)
        fig.update_yaxes(title_text="layer", type="category", row=1, col=col)
    fig.update_layout(height=460, margin=dict(l=60, r=20, t=60, b=50))
    return fig


def plot_function_vector(result: FunctionVectorResult):  # -> plotly Figure
    """Heatmap of each head's average indirect effect (layer x head)."""
    fig = head_heatmap(result.aie, colorscale="RdBu", hover="AIE", zmid=0)
    fig.update_layout(
        title=f"{result.task}: average indirect effect per head", height=520, xaxis_title="head", yaxis_title="layer"
    )
    return fig


def steering_report(
    sweep: SteeringSweep,
    best: SweepCell | None,
    generations: list[dict[str, Any]],
    *,
    model: str,
    positive: str,
    negative: str,
    mode: str,
    start_pos: int,
    end_pos: int,
    prompt: str,
    layer: int,
    n_effect_prompts: int,
    n_neutral_texts: int,
) -> Report:
    """The report of ``circuitscope steer``: the best cell under the damage budget (``best``, or None), the
    sweep's heatmaps, the ``generations`` from ``prompt`` steered at ``layer``, and every cell.

    ``end_pos`` 0 means every position from ``start_pos`` on; the effect is measured on
    ``n_effect_prompts`` prompts and the damage on ``n_neutral_texts`` neutral sentences.
    """
    report = Report(
        f"Steering: '{positive}' - '{negative}'",
        f"{model} · ActAdd at blocks.L.hook_resid_pre · mode {mode} · positions {start_pos}..{end_pos or 'end'}",
    )
    report.add_kpis(
        "Best cell under the damage budget",
        {
            "layer": str(best.layer) if best else "none",
            "coefficient": f"{best.coefficient:g}" if best else "-",
            f"Δ {sweep.effect_name}": f"{best.effect_change:+.3f}" if best else "-",
            "damage (nats/token)": f"{best.damage:+.3f}" if best else "-",
            "baseline loss": f"{sweep.baseline_loss:.3f}",
        },
    )
    report.add_figure(
        "Sweep: effect and damage",
        plot_sweep(sweep),
        f"Effect: change in {sweep.effect_name} over {n_effect_prompts} prompts. Damage: change in mean "
        f"next-token loss on {n_neutral_texts} neutral sentences.",
    )
    report.add_table(
        f"Generations from {prompt!r} (greedy), steered at layer {layer}",
        ["coefficient", "continuation"],
        [[g["coefficient"], g["text"]] for g in generations],
    )
    rows = [
        [layer_, c, float(sweep.effect_change[i, j]), float(sweep.damage[i, j])]
        for i, layer_ in enumerate(sweep.layers)
        for j, c in enumerate(sweep.coefficients)
    ]
    report.add_table("All cells", ["layer", "coefficient", "Δ effect", "damage"], rows)
    return report
