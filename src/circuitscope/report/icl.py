"""The in-context regression lab's figures and HTML report: cosine to gradient descent over training, the
comparison table, the merged weights beside the GD construction, and the loss against the context length."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from circuitscope.report.figures import titled
from circuitscope.report.html import Report
from circuitscope.toy.icl.lab import MATCH_COSINE, ICLModelRun, ICLResult

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

__all__ = ["icl_report", "plot_gd_cosine", "plot_length_curves", "plot_weights"]


def plot_gd_cosine(result: ICLResult) -> Figure:
    """Each model's prediction cosine to its GD over training (x: seconds of training), the target dotted."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for run in result.models:
        fig.add_scatter(
            x=run.seconds,
            y=run.gd_cosine,
            name=f"{run.name} vs {run.comparison.gd_steps}-step GD",
            mode="lines+markers",
            customdata=run.steps,
            hovertemplate="%{y:.4f} at %{x:.1f} s (step %{customdata})",
        )
    fig.add_hline(y=MATCH_COSINE, line_dash="dot", line_color="grey")
    return titled(fig, f"cosine of the predictions to gradient descent (dotted: {MATCH_COSINE})", "seconds", "cosine")


def plot_length_curves(result: ICLResult) -> Figure:
    """Query MSE against the number of context pairs: every model, one GD step and the least-squares floor."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=["query MSE (log)", "cosine to GD"])
    for run in result.models:
        fig.add_scatter(x=run.by_length.lengths, y=run.by_length.model_loss, name=run.name, row=1, col=1)
        fig.add_scatter(
            x=run.by_length.lengths, y=run.by_length.cosine, name=f"{run.name} cosine", row=1, col=2, showlegend=False
        )
    fig.add_scatter(
        x=result.lengths, y=result.one_step_gd_loss, name="1 GD step", line={"dash": "dash", "color": "black"}
    )
    fig.add_scatter(
        x=result.lengths,
        y=result.least_squares_loss,
        name="least squares (posterior mean)",
        line={"dash": "dot", "color": "grey"},
    )
    fig.add_vline(x=result.config.n_context, line_dash="dot", opacity=0.5)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(range=[-1, 1.05], row=1, col=2)
    title = f"against the number of context pairs (dotted: trained on {result.config.n_context}; beyond it unseen)"
    return titled(fig, title, "context pairs", height=420)


def _construction(d: int, eta: float) -> tuple[list[list[float]], list[list[float]]]:
    """The GD construction's W_KQ and W_PV at rate ``eta``: [[I, 0], [0, 0]] and [[0, 0], [0, -eta]]."""
    kq = [[1.0 if i == j and i < d else 0.0 for j in range(d + 1)] for i in range(d + 1)]
    pv = [[-eta if i == j == d else 0.0 for j in range(d + 1)] for i in range(d + 1)]
    return kq, pv


def plot_weights(run: ICLModelRun) -> Figure:
    """Head 0's merged W_KQ and W_PV in every layer (scaled so W_KQ's x-block has mean diagonal 1, the scale
    moved to W_PV), and the GD construction of the closest learning rate in the last row."""
    from plotly.subplots import make_subplots

    assert run.W_KQ is not None and run.W_PV is not None and run.construction_lr is not None
    n, d = run.n_layers, len(run.W_KQ[0][0]) - 1
    rows: list[tuple[str, list[list[float]], list[list[float]]]] = []
    for layer in range(n):
        kq, pv = run.W_KQ[layer][0], run.W_PV[layer][0]
        scale = sum(kq[i][i] for i in range(d)) / d or 1.0
        rows.append(
            (
                f"layer {layer}",
                [[v / scale for v in row] for row in kq],
                [[v * scale for v in row] for row in pv],
            )
        )
    rows.append((f"GD, eta {run.construction_lr[0]:.2f}", *_construction(d, run.construction_lr[0])))
    titles = [f"{label}: {m}" for label, *_ in rows for m in ("W_KQ", "W_PV")]
    fig = make_subplots(rows=len(rows), cols=2, subplot_titles=titles, vertical_spacing=0.06)
    bound = max(max(abs(v) for row in m for v in row) for _, *ms in rows for m in ms) or 1.0
    for r, (_, kq, pv) in enumerate(rows, start=1):
        for c, matrix in ((1, kq), (2, pv)):
            fig.add_heatmap(
                z=matrix, row=r, col=c, colorscale="RdBu", zmin=-bound, zmax=bound, showscale=(r, c) == (1, 2)
            )
            fig.update_yaxes(autorange="reversed", row=r, col=c)
    title = f"{run.name}: merged weights of head 0 (rows/columns: x_1 .. x_{d}, y)"
    return titled(fig, title, "", height=260 * len(rows))


def _comparison_row(run: ICLModelRun) -> list[Any]:
    c = run.comparison
    matched = run.matched_at
    return [
        run.name,
        f"{c.gd_steps} (lr {c.gd_lr:.3f})",
        f"{c.model_loss:.4f}",
        f"{c.gd_loss:.4f}",
        f"{c.prediction_mse:.4f}",
        f"{c.prediction_cosine:.4f}",
        f"{c.query_sensitivity_cosine:.4f}",
        f"{c.context_sensitivity_cosine:.4f}",
        ", ".join(f"{v:.3f}" for v in run.construction_cosine) if run.construction_cosine else "—",
        f"step {matched[0]} ({matched[1]:.1f} s)" if matched else "not reached",
    ]


def _answer(result: ICLResult) -> list[str]:
    lines = []
    one = next((r for r in result.models if r.kind == "linear" and r.n_layers == 1), None)
    if one is not None:
        c, matched = one.comparison, one.matched_at
        when = f"from step {matched[0]}, {matched[1]:.1f} s of training" if matched else "not within this run"
        lines.append(
            f"The 1-layer linear self-attention model predicts like one step of gradient descent (lr {c.gd_lr:.3f}): "
            f"cosine {c.prediction_cosine:.4f} ({MATCH_COSINE} reached {when}), sensitivity cosines "
            f"{c.query_sensitivity_cosine:.4f} (query) and {c.context_sensitivity_cosine:.4f} (context)."
        )
    for run in result.models:
        if run.kind == "softmax":
            c = run.comparison
            lines.append(
                f"The {run.n_layers}-layer softmax transformer reaches loss {c.model_loss:.3f} against one GD step's "
                f"{c.gd_loss:.3f}, with prediction cosine {c.prediction_cosine:.3f} to it: it is not doing one GD step."
            )
    return lines


def icl_report(result: ICLResult) -> Report:
    """The lab's page."""
    cfg = result.config
    settings = (
        f"d = {cfg.d}, {cfg.n_context} context pairs, noise {cfg.noise}; linear self-attention depths "
        f"{list(cfg.lsa_layers)}, softmax transformer of {cfg.softmax_layers} layers; seed {cfg.seed}"
    )
    report = Report("Transformers learn in context by gradient descent", settings)
    report.add_answer("What this run shows", _answer(result))
    report.add_table(
        "Models against gradient descent (held-out tasks)",
        [
            "model",
            "GD steps",
            "model MSE",
            "GD MSE",
            "prediction MSE to GD",
            "prediction cosine",
            "d/dx_q cosine",
            "d/dcontext cosine",
            "weights vs construction (per layer)",
            f"cosine >= {MATCH_COSINE}",
        ],
        [_comparison_row(run) for run in result.models],
        caption="GD starts from w = 0 with the learning rate of the best line search on training tasks; the "
        "sensitivity cosines are per task, averaged; the weights' cosine compares each layer's readout of the "
        "query's y with the GD construction's, blind to how the scale is split between W_KQ and W_PV.",
    )
    report.add_figure("Over training", plot_gd_cosine(result))
    report.add_figure("Context length", plot_length_curves(result))
    for run in result.models:
        if run.W_KQ is not None:
            report.add_figure(f"{run.name}: weights", plot_weights(run))
    return report
