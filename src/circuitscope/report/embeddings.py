"""The word-analogy report and figure: accuracy per section of the benchmark, for each set of embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from circuitscope.report.html import Report

if TYPE_CHECKING:
    from circuitscope.embeddings.benchmark import AnalogyBenchmarkResult

__all__ = ["analogy_report", "plot_analogy_benchmark"]


def plot_analogy_benchmark(result: AnalogyBenchmarkResult):  # -> plotly Figure
    """Accuracy per section (bars), with the OOV share in the hover text."""
    import plotly.graph_objects as go

    names = [s.name for s in result.sections]
    acc = [s.accuracy if s.correct + s.incorrect else 0.0 for s in result.sections]
    hover = [
        f"{s.name}<br>accuracy {s.accuracy:.3f}<br>{s.correct}/{s.correct + s.incorrect} correct<br>{s.oov} OOV skipped"
        for s in result.sections
    ]
    colors = ["#3558d4" if not n.startswith("gram") else "#d48a35" for n in names]
    fig = go.Figure(go.Bar(x=names, y=acc, marker_color=colors, hovertext=hover, hoverinfo="text"))
    fig.update_layout(
        title=f"{result.embeddings}: {result.method}, overall {result.overall_accuracy:.3f} "
        f"(semantic {result.semantic_accuracy:.3f}, syntactic {result.syntactic_accuracy:.3f})",
        yaxis_title="accuracy",
        yaxis_range=[0, 1],
        height=420,
        margin=dict(l=50, r=20, t=60, b=140),
    )
    return fig


def analogy_report(
    results: Sequence[AnalogyBenchmarkResult], seconds: Sequence[float], *, n_questions: int, method: str
) -> Report:
    """The report of ``circuitscope analogies``: headline accuracies, a per-section figure and table per result."""
    report = Report("Word analogies: Google test set", f"{n_questions} questions · {method} · gensim protocol")
    for r, s in zip(results, seconds, strict=True):
        report.add_kpis(
            r.embeddings,
            {
                "overall": f"{r.overall_accuracy:.3f}",
                "semantic": f"{r.semantic_accuracy:.3f}",
                "syntactic": f"{r.syntactic_accuracy:.3f}",
                "evaluated": str(r.n_questions - r.n_oov),
                "OOV skipped": str(r.n_oov),
                "seconds": f"{s:.1f}",
            },
        )
        report.add_figure(f"{r.embeddings}: per section", plot_analogy_benchmark(r))
        report.add_table(
            f"{r.embeddings}: sections",
            ["section", "accuracy", "correct", "incorrect", "OOV"],
            [[s.name, s.accuracy, s.correct, s.incorrect, s.oov] for s in r.sections],
        )
    return report
