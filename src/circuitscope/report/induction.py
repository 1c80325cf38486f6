"""The induction lab's figures and HTML report: loss curves with the phase change, the in-context learning
score, every head's scores over training, final scores, K-composition (from the weights and measured on
activations), ablation importance, and the logits' trajectory over checkpoints with its kinks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from circuitscope.report.figures import layer_heatmap, titled
from circuitscope.report.heads import plot_composition, plot_head_ablation, plot_head_scores
from circuitscope.report.html import Report
from circuitscope.toy.induction import InductionRun

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

__all__ = [
    "induction_report",
    "plot_activation_composition",
    "plot_head_curves",
    "plot_logit_trajectories",
    "plot_loss_curves",
]


def _smooth(values: list[float], window: int = 20) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def plot_loss_curves(runs: list[InductionRun]) -> Figure:
    """Training loss (smoothed) of every depth, with the induction phase change marked."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for run in runs:
        fig.add_scatter(y=_smooth(run.loss), name=f"{run.config.n_layers} layer(s)", mode="lines")
        if run.phase_change_step is not None:
            fig.add_vline(
                x=run.phase_change_step,
                line_dash="dot",
                opacity=0.5,
                annotation_text=f"L{run.config.n_layers} induction",
            )
    return titled(fig, "training loss (20-step moving average); dotted: first induction score > 0.3", "step", "loss")


def plot_icl(runs: list[InductionRun]) -> Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    for run in runs:
        fig.add_scatter(x=run.steps, y=run.icl_score, name=f"{run.config.n_layers} layer(s)", mode="lines+markers")
    return titled(fig, "in-context learning score: loss late in the context minus loss early", "step", "Δ loss (nats)")


def plot_head_curves(run: InductionRun) -> Figure:
    """Every head's induction and previous-token score over training."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=["induction score", "previous-token score"])
    n_layers, n_heads = run.config.n_layers, run.config.n_heads
    for col, curves in ((1, run.induction), (2, run.previous_token)):
        for layer in range(n_layers):
            for head in range(n_heads):
                fig.add_scatter(
                    x=run.steps,
                    y=[grid[layer][head] for grid in curves],
                    mode="lines",
                    row=1,
                    col=col,
                    name=f"L{layer}H{head}",
                    legendgroup=f"L{layer}H{head}",
                    showlegend=col == 1,
                )
    if any(v is not None for v in run.k_composition) and run.composition is not None:
        fig.add_scatter(
            x=run.steps,
            y=run.k_composition,
            mode="lines",
            line={"dash": "dot", "color": "black"},
            name="K-comp (prev → induction)",
            row=1,
            col=1,
        )
        fig.add_hline(y=run.composition.baseline["k"], line_dash="dash", line_color="grey", row=1, col=1)  # type: ignore[arg-type]
    title = f"{n_layers}-layer model: head scores over training (dashed grey: random K-comp baseline)"
    return titled(fig, title, "step", height=420)


def plot_logit_trajectories(runs: list[InductionRun]) -> Figure:
    """Each depth's checkpoints on the top two principal components of their logits (kinks as crosses), and the
    turning angle of the path at each checkpoint."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=["PC 1 against PC 2", "turning angle (degrees)"])
    for run in runs:
        trajectory = run.logit_trajectory
        if trajectory is None:
            continue
        name = f"{run.config.n_layers} layer(s)"
        pc2 = [c[1] if len(c) > 1 else 0.0 for c in trajectory.coords]
        pc1 = [c[0] for c in trajectory.coords]
        fig.add_scatter(x=pc1, y=pc2, mode="lines+markers", name=name, text=trajectory.steps, row=1, col=1)
        kinks = [trajectory.steps.index(step) for step in trajectory.kinks]
        fig.add_scatter(
            x=[pc1[i] for i in kinks],
            y=[pc2[i] for i in kinks],
            mode="markers",
            marker={"symbol": "x", "size": 12, "color": "black"},
            name=f"{name}: kinks",
            text=trajectory.kinks,
            row=1,
            col=1,
        )
        fig.add_scatter(
            x=trajectory.steps, y=trajectory.turning, mode="lines+markers", name=f"{name} angle", row=1, col=2
        )
    fig.update_xaxes(title_text="PC 1", row=1, col=1)
    fig.update_yaxes(title_text="PC 2", row=1, col=1)
    return titled(fig, "logits on fixed random tokens, PCA over checkpoints (crosses: kinks)", "step", height=440)


def plot_activation_composition(run: InductionRun, mode: str = "k") -> Figure:
    """The share of every later head's ``mode`` input (columns) written by each part of the residual stream (rows)."""
    comp = run.activation_composition
    assert comp is not None
    grid = getattr(comp, mode)  # [part layer head]
    n_layers, n_heads = grid.shape[1], grid.shape[2]
    columns = [f"L{layer}H{head}" for layer in range(1, n_layers) for head in range(n_heads)]
    z = [[None if v != v else float(v) for v in grid[row, 1:].flatten().tolist()] for row in range(len(comp.labels))]
    return layer_heatmap(
        z,
        columns,
        comp.labels,
        colorbar="share",
        hovertemplate=f"%{{y}} → %{{x}} {mode}: %{{z:.3f}}<extra></extra>",
        title=f"{run.config.n_layers}-layer: share of each head's {mode.upper()} input, measured on activations",
        xaxis_title="reading head",
        yaxis_title="written by",
    )


def _top_sources(run: InductionRun) -> list[list[Any]]:
    """Per head of layer 1 and later: the earlier head writing the largest share of its Q, K and V input."""
    comp = run.activation_composition
    if comp is None:
        return []
    heads = [i for i, label in enumerate(comp.labels) if label.startswith("L")]
    rows = []
    for layer in range(1, run.config.n_layers):
        for head in range(run.config.n_heads):
            cells: list[Any] = [run.config.n_layers, f"L{layer}H{head}"]
            for mode in ("q", "k", "v"):
                column = getattr(comp, mode)[heads, layer, head]
                best = int(column.nan_to_num(float("-inf")).argmax())
                cells.append(f"{comp.labels[heads[best]]} ({float(column[best]):.2f})")
            rows.append(cells)
    return rows


def _phase_rows(runs: list[InductionRun]) -> list[list[Any]]:
    return [
        [
            r.config.n_layers,
            ", ".join(str(k) for k in r.logit_trajectory.kinks) or "none",
            r.phase_change_step if r.phase_change_step is not None else "none",
            ", ".join(f"{v:.2f}" for v in r.logit_trajectory.explained),
        ]
        for r in runs
        if r.logit_trajectory is not None
    ]


def _summary_row(run: InductionRun) -> list[Any]:
    ind, prev = run.final_induction, run.final_previous_token
    top_ind = ind.top(1)[0] if ind else None
    top_prev = prev.top(1)[0] if prev else None
    kcomp = run.k_composition[-1] if run.k_composition else None
    abl = run.ablation.top(1)[0] if run.ablation else None
    return [
        run.config.n_layers,
        f"L{top_ind[0]}H{top_ind[1]} ({top_ind[2]:.2f})" if top_ind else "—",
        f"L{top_prev[0]}H{top_prev[1]} ({top_prev[2]:.2f})" if top_prev else "—",
        run.phase_change_step if run.phase_change_step is not None else "none",
        f"{kcomp:.3f} vs {run.composition.baseline['k']:.3f}" if kcomp is not None and run.composition else "—",
        f"{run.icl_score[-1]:.3f}",
        f"L{abl[0]}H{abl[1]} (+{abl[2]:.3f})" if abl else "—",
    ]


def _paper_and_run(runs: list[InductionRun]) -> list[list[str]]:
    """One row per claim of the papers: what they report and what these runs measured."""
    two = next((r for r in runs if r.config.n_layers == 2), None)
    one = next((r for r in runs if r.config.n_layers == 1), None)
    return [
        [
            "1-layer model",
            "no induction heads (no composition possible); skip-trigram-like heads",
            f"top induction score {one.final_induction.top(1)[0][2]:.2f}" if one and one.final_induction else "not run",
        ],
        [
            "2-layer model",
            "a previous-token head in layer 0 K-composes with an induction head in layer 1",
            (
                f"induction head L{two.final_induction.top(1)[0][0]}H{two.final_induction.top(1)[0][1]} "
                f"({two.final_induction.top(1)[0][2]:.2f}), K-comp {two.k_composition[-1]:.3f} vs baseline "
                f"{two.composition.baseline['k']:.3f}"
            )
            if two and two.final_induction and two.composition and two.k_composition[-1] is not None
            else "not run",
        ],
        [
            "phase change",
            "induction heads form abruptly, with a bump in the loss and a drop of the ICL score",
            ", ".join(f"{r.config.n_layers}L: step {r.phase_change_step}" for r in runs),
        ],
        [
            "ICL score",
            "markedly negative after the phase change (late tokens are easier)",
            ", ".join(f"{r.config.n_layers}L: {r.icl_score[0]:.2f} → {r.icl_score[-1]:.2f}" for r in runs),
        ],
    ]


def _add_run_figures(report: Report, run: InductionRun) -> None:
    """One model's figures: head scores over training, the final scores, K-composition, ablation importance."""
    n = run.config.n_layers
    report.add_figure(f"{n}-layer: head scores over training", plot_head_curves(run))
    if run.final_induction is not None:
        report.add_figure(f"{n}-layer: final induction scores", plot_head_scores(run.final_induction))
    if run.composition is not None and n > 1:
        report.add_figure(f"{n}-layer: K-composition", plot_composition(run.composition, "k"))
    if run.activation_composition is not None and n > 1:
        report.add_figure(f"{n}-layer: K-composition on activations", plot_activation_composition(run, "k"))
    if run.ablation is not None:
        report.add_figure(f"{n}-layer: head ablation importance", plot_head_ablation(run.ablation))


def induction_report(runs: list[InductionRun]) -> Report:
    base = runs[0].config
    report = Report(
        title="Induction heads in attention-only transformers",
        subtitle=f"data: {base.data}; d_model {base.d_model}, {base.n_heads} heads, n_ctx {base.n_ctx}, "
        f"{base.steps} steps, batch {base.batch_size}, seed {base.seed}",
    )
    report.add_table(
        "The paper and this run", ["", "Elhage et al. 2021 / Olsson et al. 2022", "this run"], _paper_and_run(runs)
    )
    report.add_table(
        "Models compared",
        [
            "layers",
            "top induction head",
            "top previous-token head",
            "phase change",
            "K-comp (final) vs random",
            "ICL score",
            "most important head (mean ablation)",
        ],
        [_summary_row(r) for r in runs],
    )
    report.add_table(
        "Phase changes: kinks of the logit trajectory",
        ["layers", "kinks (steps)", "first induction score > 0.3", "variance on PC 1, 2, 3"],
        _phase_rows(runs),
        caption="Each checkpoint's log-probabilities on the same fixed random tokens, PCA over checkpoints; a kink is "
        "a checkpoint where the path turns by 45 degrees or more (and more than its neighbours) while both its "
        "steps are at least a quarter of the longest.",
    )
    report.add_figure("Logit trajectories", plot_logit_trajectories(runs))
    sources = [row for run in runs for row in _top_sources(run)]
    if sources:
        report.add_table(
            "Composition on activations: the earlier head writing most of each head's input",
            ["layers", "head", "Q input", "K input", "V input"],
            sources,
            caption="Share of the head's query/key/value vectors (squared norm along the input itself) written by "
            "each earlier head's output on repeated random tokens; the shares of all parts (embeddings, heads, "
            "biases) add up to 1. Beside the weight-based composition scores below.",
        )
    report.add_figure("Loss curves", plot_loss_curves(runs))
    report.add_figure("In-context learning score", plot_icl(runs))
    for run in runs:
        _add_run_figures(report, run)
    return report
