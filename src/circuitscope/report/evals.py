"""The prompt-variant report and figure: p(answer) per framing with bootstrap intervals, the effect table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from circuitscope.report.html import Report

if TYPE_CHECKING:
    from circuitscope.evals import Framing, PromptVariantResult

__all__ = ["plot_prompt_variants", "prompt_variants_report"]


def plot_prompt_variants(result: PromptVariantResult):  # -> plotly Figure
    """Mean p(answer) per framing with 95% bootstrap intervals."""
    import plotly.graph_objects as go

    rows = result.scores()
    fig = go.Figure(
        go.Bar(
            x=[r.framing for r in rows],
            y=[r.p_answer for r in rows],
            error_y=dict(
                type="data",
                symmetric=False,
                array=[r.p_answer_ci95[1] - r.p_answer for r in rows],
                arrayminus=[r.p_answer - r.p_answer_ci95[0] for r in rows],
            ),
        )
    )
    fig.update_layout(
        title=f"p(answer) by framing, {len(result.questions)} questions (95% bootstrap CI)",
        yaxis_title="mean p(answer | options)",
        yaxis_range=[0, 1],
        height=420,
    )
    return fig


def prompt_variants_report(
    result: PromptVariantResult, framings: Sequence[Framing], *, model: str, source: str, n_questions: int
) -> Report:
    """The report of ``circuitscope eval-prompts``: the figure, the effect table and the framings' templates."""
    report = Report("Prompt-variant evaluation", f"{model} · {source} · {n_questions} questions")
    report.add_figure("p(answer) by framing", plot_prompt_variants(result))
    report.add_table(
        "Effect table (95% bootstrap intervals; effect is paired, vs the first framing)",
        ["framing", "accuracy", "acc CI", "p(answer)", "p CI", "margin", "effect vs baseline", "effect CI"],
        [
            [
                r.framing,
                r.accuracy,
                f"[{r.accuracy_ci95[0]:.3f}, {r.accuracy_ci95[1]:.3f}]",
                r.p_answer,
                f"[{r.p_answer_ci95[0]:.3f}, {r.p_answer_ci95[1]:.3f}]",
                r.margin,
                r.effect_p_answer_vs_baseline,
                f"[{r.effect_ci95[0]:+.3f}, {r.effect_ci95[1]:+.3f}]",
            ]
            for r in result.scores()
        ],
    )
    report.add_table("Framings", ["name", "template"], [[f.name, f.template] for f in framings])
    return report
