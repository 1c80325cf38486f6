"""The probe report and figure: held-out (and train) accuracy of a probe per layer, CCS beside it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from circuitscope.report.html import Report

if TYPE_CHECKING:
    from circuitscope.probes.sweep import CCSSweep, ProbeSweep

__all__ = ["plot_probe_sweep", "probe_report"]


def plot_probe_sweep(sweep: ProbeSweep, ccs: CCSSweep | None = None, title: str = "probe accuracy by layer"):
    """Held-out (and train) accuracy per hook; CCS accuracy beside it when given."""
    import plotly.graph_objects as go

    x = [h.replace("blocks.", "").replace(".hook_", " ") for h in sweep.hooks]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=sweep.test_accuracy.tolist(), mode="lines+markers", name="logistic, held out"))
    fig.add_trace(
        go.Scatter(x=x, y=sweep.train_accuracy.tolist(), mode="lines", name="logistic, train", line=dict(dash="dot"))
    )
    if ccs is not None:
        cx = [h.replace("blocks.", "").replace(".hook_", " ") for h in ccs.hooks]
        fig.add_trace(go.Scatter(x=cx, y=ccs.test_accuracy.tolist(), mode="lines+markers", name="CCS, held out"))
    fig.add_hline(y=0.5, line=dict(color="#999", dash="dash"))
    fig.update_layout(title=title, yaxis_title="accuracy", yaxis_range=[0.3, 1.02], height=420)
    return fig


def probe_report(sweep: ProbeSweep, ccs: CCSSweep | None, *, model: str, n_statements: int, hook: str) -> Report:
    """The report of ``circuitscope probe``: accuracy by layer at ``blocks.L.{hook}``, and a table per hook."""
    report = Report("Truth probes by layer", f"{model} · {n_statements} statements · blocks.L.{hook}, last token")
    report.add_figure("Accuracy by layer", plot_probe_sweep(sweep, ccs))
    report.add_table(
        "Per layer",
        ["hook", "logistic train", "logistic held out"] + (["CCS held out"] if ccs else []),
        [
            [h, float(sweep.train_accuracy[i]), float(sweep.test_accuracy[i])]
            + ([float(ccs.test_accuracy[i])] if ccs else [])
            for i, h in enumerate(sweep.hooks)
        ],
    )
    return report
