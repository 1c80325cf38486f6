"""The studies' reports: the hypothesis, the method, the numbers with 95% intervals, and the answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from circuitscope.report.figures import titled
from circuitscope.report.html import Report

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

    from circuitscope.studies import AgreementFramingResult, Estimate, TruthFramingResult

__all__ = ["agreement_framing_report", "estimate_bars", "truth_framing_report"]


def estimate_bars(names: list[str], estimates: list[Estimate], name: str = "") -> Any:
    """One bar per estimate with its 95% interval as the error bar (a plotly Bar trace)."""
    import plotly.graph_objects as go

    return go.Bar(
        x=names,
        y=[e.mean for e in estimates],
        name=name,
        error_y=dict(
            type="data",
            symmetric=False,
            array=[e.high - e.mean for e in estimates],
            arrayminus=[e.mean - e.low for e in estimates],
        ),
    )


def _study_page(title: str, subtitle: str, answer: str, method: list[str]) -> Report:
    """A study's page begins the same way: its answer, then its hypothesis and method."""
    report = Report(title, subtitle)
    report.add_answer("Answer", [answer])
    report.add_text("Hypothesis and method", method)
    return report


def _truth_figures(result: TruthFramingResult) -> tuple[Figure, Figure]:
    import plotly.graph_objects as go

    names = [s.persona for s in result.scores]
    levels = go.Figure([
        estimate_bars(names, [s.accuracy for s in result.scores], "accuracy"),
        estimate_bars(names, [s.p_correct for s in result.scores], "p(correct)"),
    ])  # fmt: skip
    levels.add_hline(y=0.5, line_dash="dot", annotation_text="chance")
    titled(levels, "Judging statements under each persona (95% bootstrap CI)", "persona", "share", yaxis_range=[0, 1])
    others = result.scores[1:]
    diffs = go.Figure([
        estimate_bars([s.persona for s in others], [s.accuracy_vs_baseline for s in others], "accuracy"),
        estimate_bars([s.persona for s in others], [s.p_correct_vs_baseline for s in others], "p(correct)"),
    ])  # fmt: skip
    diffs.add_hline(y=0, line_dash="dot")
    titled(diffs, f'Paired difference from "{result.baseline.persona}" (95% bootstrap CI)', "persona", "difference")
    return levels, diffs


def truth_framing_report(result: TruthFramingResult, *, model: str) -> Report:
    """The report of ``circuitscope study truth-framing``."""
    from circuitscope.studies.truth_framing import HYPOTHESIS

    cfg = result.config
    method = (
        f"{len(result.statements)} generated statements (half true; topics {', '.join(result.by_topic)}) are "
        "each judged under every persona by comparing the log-probabilities of ' True' and ' False' after the "
        f"prompt. Intervals: {cfg.n_boot} bootstrap resamples of the statements, paired for the differences."
    )
    subtitle = f"{model} · {len(result.statements)} statements"
    title = "Study: truthfulness under persona framings"
    report = _study_page(title, subtitle, result.answer(), [HYPOTHESIS, method, f"Template: {cfg.template!r}"])
    levels, diffs = _truth_figures(result)
    report.add_figure("Accuracy and p(correct) per persona", levels)
    report.add_figure("Difference from the baseline, paired", diffs)
    report.add_table(
        "Numbers (mean [95% CI])",
        ["persona", "accuracy", "p(correct)", "accuracy - baseline", "p(correct) - baseline", "says true"],
        [
            [
                s.persona,
                s.accuracy.text(),
                s.p_correct.text(),
                s.accuracy_vs_baseline.text(),
                s.p_correct_vs_baseline.text(),
                f"{s.says_true:.2f}",
            ]
            for s in result.scores
        ],
        caption="'says true': the share of statements called true; far from 0.5 means a bias towards one word.",
    )
    report.add_table(
        "Accuracy by topic",
        ["topic", *[s.persona for s in result.scores]],
        [[topic, *[f"{a:.2f}" for a in accs]] for topic, accs in result.by_topic.items()],
    )
    return report


def agreement_framing_report(result: AgreementFramingResult, *, model: str) -> Report:
    """The report of ``circuitscope study agreement-framing``."""
    import plotly.graph_objects as go

    from circuitscope.studies.agreement_framing import HYPOTHESIS

    cfg = result.config
    method = (
        "Each action is asked about twice. p(agree) is p(' Yes') renormalised over ' Yes' and ' No'; the verdict "
        "the answer implies is p(okay) = p(agree) for the affirmative question and 1 - p(agree) for the "
        "disconfirming one. The framing effect is the paired difference of the two verdicts (0: the framing does "
        f"not matter; > 0: the model conforms). Intervals: {cfg.n_boot} bootstrap resamples of the actions."
    )
    questions = f"Affirmative: {cfg.affirmative!r}. Disconfirming: {cfg.disconfirming!r}."
    title, subtitle = "Study: conforming to the question's framing", f"{model} · {len(result.actions)} actions"
    report = _study_page(title, subtitle, result.answer(), [HYPOTHESIS, method, questions])
    names = [k.kind or "all" for k in result.kinds]
    verdicts = go.Figure([
        estimate_bars(names, [k.p_okay_affirmative for k in result.kinds], "affirmative question"),
        estimate_bars(names, [k.p_okay_disconfirming for k in result.kinds], "disconfirming question"),
    ])  # fmt: skip
    titled(verdicts, "Implied p(okay) by framing (95% bootstrap CI)", "actions", "p(okay)", yaxis_range=[0, 1])
    report.add_figure("The verdict each framing implies", verdicts)
    effect = go.Figure([estimate_bars(names, [k.framing_effect for k in result.kinds], "framing effect")])
    effect.add_hline(y=0, line_dash="dot")
    titled(effect, "Framing effect, paired (95% bootstrap CI)", "actions", "p(okay | aff.) - p(okay | disc.)")
    report.add_figure("Framing effect", effect)
    report.add_table(
        "Numbers (mean [95% CI])",
        ["actions", "n", "p(agree) aff.", "p(agree) disc.", "p(okay) aff.", "p(okay) disc.", "framing effect"],
        [
            [
                k.kind or "all",
                k.framing_effect.n,
                k.p_agree_affirmative.text(),
                k.p_agree_disconfirming.text(),
                k.p_okay_affirmative.text(),
                k.p_okay_disconfirming.text(),
                k.framing_effect.text(),
            ]
            for k in result.kinds
        ],
        caption=f"Discrimination (fine minus not okay, p(okay) over both framings): {result.discrimination.text()}.",
    )
    report.add_table(
        "Per action",
        ["action", "kind", "p(agree) aff.", "p(agree) disc."],
        [
            [a.text, a.kind, f"{float(result.p_agree[0, i]):.3f}", f"{float(result.p_agree[1, i]):.3f}"]
            for i, a in enumerate(result.actions)
        ],
    )
    return report
