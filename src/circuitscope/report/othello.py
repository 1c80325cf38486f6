"""The Othello-GPT lab's figures and HTML report: legal-move accuracy over training, probe accuracy by
layer in both framings, the per-square accuracy on the board, and the intervention's effect by layer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from circuitscope.report.figures import round_numbers, titled
from circuitscope.report.html import Report
from circuitscope.toy.othello.board import square_name
from circuitscope.toy.othello.config import OthelloConfig
from circuitscope.toy.othello.lab import OthelloResult

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

__all__ = ["othello_report", "plot_edits", "plot_legal_accuracy", "plot_probe_layers", "plot_square_accuracy"]

_NAMES = {"colour": "black/white", "relative": "mine/theirs"}


def plot_legal_accuracy(result: OthelloResult) -> Figure:
    """Held-out legal-move top-1 accuracy at each checkpoint."""
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Scatter(x=result.steps, y=result.legal_move_accuracy, name="legal-move top-1", mode="lines+markers")
    )
    fig.add_hline(y=0.9, line_dash="dot", annotation_text="target 90%")
    return round_numbers(
        titled(fig, "legal-move top-1 accuracy on held-out games", "step", "accuracy", yaxis_range=[0, 1])
    )


def plot_probe_layers(result: OthelloResult, occupied: bool) -> Figure:
    """Probe accuracy by layer: linear and MLP, black/white and mine/theirs (all squares, or occupied ones)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for framing in ("relative", "colour"):
        for kind, dash in (("linear", "solid"), ("mlp", "dot")):
            rows = sorted((p for p in result.probes if p.framing == framing and p.kind == kind), key=lambda p: p.layer)
            y = [p.occupied_accuracy if occupied else p.accuracy for p in rows]
            fig.add_scatter(x=[p.layer for p in rows], y=y, name=f"{kind} {_NAMES[framing]}", line={"dash": dash})
    which = "occupied squares" if occupied else "all squares"
    return round_numbers(
        titled(
            fig, f"probe accuracy by layer ({which})", "residual stream (0: embedding, l: after block l)", "accuracy"
        )
    )


def plot_square_accuracy(result: OthelloResult) -> Figure:
    """Per-square accuracy of the best linear probe of each framing, laid out on the board."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    n = result.config.size
    probes = [result.best_probe(framing, "linear") for framing in ("relative", "colour")]
    fig = make_subplots(rows=1, cols=2, subplot_titles=[f"linear {_NAMES[p.framing]}, layer {p.layer}" for p in probes])
    for col, probe in enumerate(probes, start=1):
        z = [probe.per_square[r * n : (r + 1) * n] for r in range(n)]
        text = [[square_name(r * n + c, n) for c in range(n)] for r in range(n)]
        fig.add_trace(
            go.Heatmap(
                z=z, text=text, zmin=0.5, zmax=1, colorscale="Viridis", hovertemplate="%{text}: %{z:.3f}<extra></extra>"
            ),
            row=1,
            col=col,
        )
    fig.update_yaxes(autorange="reversed")
    return titled(fig, "held-out accuracy of each square", "column", "row", height=420)


def plot_edits(result: OthelloResult) -> Figure:
    """Top-k errors against the edited board, edited run beside the unedited one, by the first layer edited."""
    import plotly.graph_objects as go

    layers = [s.layer for s in result.edits.by_layer]
    fig = go.Figure()
    fig.add_bar(x=layers, y=[s.errors_unedited for s in result.edits.by_layer], name="unedited run")
    fig.add_bar(x=layers, y=[s.errors_edited for s in result.edits.by_layer], name="edited run")
    return round_numbers(
        titled(
            fig,
            f"flipping a disc along the probe directions ({result.edits.n_edits} edits)",
            "first residual stream edited",
            "mean top-k errors against the edited board",
        )
    )


def _paper_and_run(result: OthelloResult) -> list[list[str]]:
    lin_rel, lin_col = result.best_probe("relative", "linear"), result.best_probe("colour", "linear")
    mlp_col = result.best_probe("colour", "mlp")
    best = result.edits.best()
    return [
        ["legal moves", "top-1 legal 99.99% (8x8, 8 layers, 20M games)", f"{result.final_accuracy:.2%} held out"],
        [
            "linear mine/theirs probe",
            "works (Nanda et al.: ~99% at the middle layers)",
            f"{lin_rel.accuracy:.1%} per square at layer {lin_rel.layer} ({lin_rel.occupied_accuracy:.1%} of occupied)",
        ],
        [
            "black/white probe",
            "linear fails, MLP works (Li et al.)",
            f"linear {lin_col.accuracy:.1%} (layer {lin_col.layer}; occupied {lin_col.occupied_accuracy:.1%}), "
            f"MLP {mlp_col.accuracy:.1%} (layer {mlp_col.layer}; occupied {mlp_col.occupied_accuracy:.1%})",
        ],
        [
            "intervention",
            "the predictions follow the edited board (errors fall from ~2 to ~0.1-0.5)",
            f"from layer {best.layer}: {best.errors_unedited:.2f} → {best.errors_edited:.2f} errors; "
            f"top-1 legal on the edited board {best.top1_unedited:.1%} → {best.top1_edited:.1%}",
        ],
    ]


def _setting(c: OthelloConfig) -> str:
    return (
        f"{c.size}x{c.size} board, {c.n_train_games:,} random games ({c.passes} passes), {c.n_layers} layers, "
        f"d_model {c.d_model}, {c.n_heads} heads, d_mlp {c.d_mlp}, {c.steps} steps of {c.batch_size} games, "
        f"target {c.target}, seed {c.seed}"
    )


def othello_report(result: OthelloResult) -> Report:
    report = Report("A world model in a sequence model: Othello-GPT", _setting(result.config))
    lin_rel = result.best_probe("relative", "linear")
    per_step = result.training_seconds / result.trained_steps if result.trained_steps else None
    report.add_kpis(
        "Summary",
        {
            "legal-move top-1": f"{result.final_accuracy:.1%}",
            "linear mine/theirs": f"{lin_rel.accuracy:.1%} (layer {lin_rel.layer})",
            "linear black/white": f"{result.best_probe('colour', 'linear').accuracy:.1%}",
            "parameters": f"{result.n_params:,}",
            "training": f"{result.training_seconds:.0f} s"
            + (f" ({per_step:.3f} s/step)" if per_step else " (resumed)"),
            "threads": str(result.threads),
        },
    )
    report.add_table(
        "The papers and this run", ["", "Li et al. 2023 / Nanda et al. 2023", "this run"], _paper_and_run(result)
    )
    report.add_figure("Legal moves", plot_legal_accuracy(result))
    report.add_figure(
        "Probes by layer",
        plot_probe_layers(result, occupied=False),
        "Per-square accuracy on the positions of held-out games; mine = the player to move next.",
    )
    report.add_figure(
        "Probes by layer, occupied squares",
        plot_probe_layers(result, occupied=True),
        "The colour of a disc is the hard part: an empty square is known from the moves played.",
    )
    report.add_figure("Probe accuracy on the board", plot_square_accuracy(result))
    report.add_figure(
        "Intervention",
        plot_edits(result),
        "Each edit flips one disc in the residual stream at the first layer shown and every probed layer after it "
        "(the probe's logit difference mirrored across its decision boundary). Errors: top-k predictions not legal on "
        "the edited board, k its number of legal moves.",
    )
    return report
