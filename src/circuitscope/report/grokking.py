"""The grokking lab's figures and HTML report: losses with the phases shaded, accuracy and weight norm, the
embedding's Fourier spectrum over training."""

from __future__ import annotations

from typing import TYPE_CHECKING

from circuitscope.report.figures import titled
from circuitscope.report.html import Report
from circuitscope.toy.grokking_lab import GENERALISED, GrokkingResult

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

__all__ = ["grokking_report", "plot_fourier_norms", "plot_grokking_curves"]

_PHASE_COLOURS = {"memorisation": "#f4d35e", "circuit_formation": "#8ecae6", "cleanup": "#95d5b2"}


def _mark_phases(fig: Figure, result: GrokkingResult) -> None:
    last = result.steps[-1] if result.steps else 0
    for name, (start, end) in result.phases.items():
        if start is None:
            continue
        fig.add_vrect(
            x0=start,
            x1=end if end is not None else last,
            fillcolor=_PHASE_COLOURS[name],
            opacity=0.25,
            line_width=0,
            annotation_text=name.replace("_", " "),
            annotation_position="top left",
        )


def plot_grokking_curves(result: GrokkingResult) -> Figure:
    """Train, test, restricted and excluded loss (log scale) with the phases shaded."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, values, dash in (
        ("train loss", result.train_loss, "solid"),
        ("test loss", result.test_loss, "solid"),
        ("restricted loss", result.restricted_loss, "dot"),
        ("excluded loss", result.excluded_loss, "dash"),
    ):
        fig.add_scatter(x=result.steps, y=values, name=name, line={"dash": dash})
    _mark_phases(fig, result)
    return titled(fig, "losses over training", "step", "cross-entropy", yaxis_type="log")


def plot_accuracy_and_weights(result: GrokkingResult) -> Figure:
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_scatter(x=result.steps, y=result.train_accuracy, name="train accuracy")
    fig.add_scatter(x=result.steps, y=result.test_accuracy, name="test accuracy")
    fig.add_scatter(
        x=result.steps, y=result.weight_norm, name="sum of squared weights", secondary_y=True, line={"dash": "dot"}
    )
    _mark_phases(fig, result)
    fig.update_yaxes(title_text="accuracy", secondary_y=False)
    fig.update_yaxes(title_text="Σ w²", secondary_y=True)
    return titled(fig, "accuracy and total weight norm", "step")


def plot_fourier_norms(result: GrokkingResult) -> Figure:
    """Embedding norm per frequency over training (heatmap), key frequencies listed in the title."""
    import plotly.graph_objects as go

    z = [list(row) for row in zip(*result.fourier_norms, strict=True)]  # [freq, checkpoint]
    fig = go.Figure(
        go.Heatmap(z=z, x=result.steps, y=list(range(1, len(z) + 1)), colorscale="Viridis", colorbar={"title": "norm"})
    )
    return titled(
        fig, f"embedding Fourier norms; key frequencies {result.key_frequencies}", "step", "frequency k", height=520
    )


def plot_final_spectrum(result: GrokkingResult) -> Figure:
    import plotly.graph_objects as go

    final = result.fourier_norms[-1]
    colours = ["#d62828" if k + 1 in result.key_frequencies else "#8d99ae" for k in range(len(final))]
    fig = go.Figure(go.Bar(x=list(range(1, len(final) + 1)), y=final, marker_color=colours))
    return titled(fig, "final embedding: norm per frequency (key frequencies in red)", "frequency k", "norm")


def _phase_text(result: GrokkingResult) -> str:
    parts = []
    for name, (a, b) in result.phases.items():
        parts.append(f"{name.replace('_', ' ')}: {a if a is not None else '—'} → {b if b is not None else '—'}")
    return "; ".join(parts)


def _summary(result: GrokkingResult) -> dict[str, str]:
    g = result.generalised_step
    return {
        "final train loss": f"{result.train_loss[-1]:.3g}",
        "final test loss": f"{result.test_loss[-1]:.3g}",
        "generalised at step": str(g) if g is not None else "not yet",
        "key frequencies": ", ".join(map(str, result.key_frequencies)),
        "wall-clock (s)": f"{result.seconds[-1]:.0f}",
    }


def _paper_and_run(result: GrokkingResult) -> list[list[str]]:
    """One row per claim of the paper: what it reports (p = 113) and what this run measured."""
    g = result.generalised_step
    return [
        [
            "phases",
            "memorisation 0–1.4k, circuit formation 1.4k–9.4k, cleanup 9.4k–13k epochs",
            _phase_text(result),
        ],
        [
            "generalisation",
            "test loss falls sharply during cleanup, long after train loss is ~0",
            f"test loss < {GENERALISED} at step {g}" if g is not None else "test loss never fell below 0.1",
        ],
        [
            "key frequencies",
            "a handful (5 in the main run: 14, 35, 41, 42, 52)",
            f"{len(result.key_frequencies)}: {result.key_frequencies}",
        ],
        [
            "embedding",
            "sparse in the Fourier basis at the end",
            f"top frequency norms {sorted(result.fourier_norms[-1], reverse=True)[:5]}",
        ],
        [
            "restricted loss",
            "falls before test loss (circuit forms during 'circuit formation')",
            f"{result.restricted_loss[0]:.3g} → {result.restricted_loss[-1]:.3g}",
        ],
        [
            "excluded loss",
            "rises during circuit formation (memorisation is removed)",
            f"{result.excluded_loss[0]:.3g} → max {max(result.excluded_loss):.3g} → {result.excluded_loss[-1]:.3g}",
        ],
        [
            "weight norm",
            "falls steadily, fastest in cleanup",
            f"{result.weight_norm[0]:.4g} → {result.weight_norm[-1]:.4g}",
        ],
    ]


def grokking_report(result: GrokkingResult) -> Report:
    c = result.config
    report = Report(
        title="Grokking modular addition",
        subtitle=f"p = {c.p}, {c.train_fraction:.0%} of pairs for training, 1 layer, d_model {c.d_model}, "
        f"{c.n_heads} heads of {c.d_head}, d_mlp {c.d_mlp}, AdamW lr {c.lr}, wd {c.weight_decay}, seed {c.seed}",
    )
    report.add_kpis("Summary", _summary(result))
    report.add_table(
        "The paper and this run",
        ["", "Nanda et al. 2023 (p = 113)", "this run"],
        _paper_and_run(result),
        caption="Phase boundaries here are operational: memorisation ends at 99% train accuracy, circuit "
        "formation at 50% test accuracy, cleanup at test loss < 0.1. The paper places them by the "
        "restricted and excluded losses.",
    )
    report.add_figure(
        "Losses",
        plot_grokking_curves(result),
        "Restricted loss keeps only the key-frequency terms cos/sin w_k(a+b) of the logits (all "
        "pairs); excluded loss removes them (training pairs).",
    )
    report.add_figure("Accuracy and weights", plot_accuracy_and_weights(result))
    report.add_figure("Fourier components of the embedding", plot_fourier_norms(result))
    report.add_figure("Final spectrum", plot_final_spectrum(result))
    return report
