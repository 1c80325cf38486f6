"""The rewiring study's report: the hypothesis, the method, the numbers with 95% intervals, the figures, the answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from circuitscope.report.diffing import plot_attention_diff, plot_cka, plot_weight_diff
from circuitscope.report.figures import titled
from circuitscope.report.head_grid import head_heatmap
from circuitscope.report.html import Report
from circuitscope.report.studies import estimate_bars

if TYPE_CHECKING:
    from circuitscope.diffing import Context
    from circuitscope.studies.rewiring import RewiringResult
    from circuitscope.studies.rewiring_loss import LossChange

__all__ = ["rewiring_report"]


def _method(result: RewiringResult) -> str:
    cfg = result.config
    return (
        "Both models read the same token contexts: held-out in-domain contexts of the fine-tuning corpus and "
        "out-of-domain ones (generated statements). Per-token loss is compared per context; head importance is the "
        f"loss increase when each head is mean-ablated on {cfg.n_ablation} in-domain contexts; attention patterns "
        "(total-variation distance) and residual-stream linear CKA are compared per layer on the in-domain text; "
        f"the IOI circuit is found on each model ({cfg.circuit_method}, {cfg.ioi_prompts} prompts; the one before "
        f"is the smallest reaching faithfulness {cfg.circuit_target}, the one after has as many edges) and the old "
        "circuit is evaluated on the new model; the weight change is |W_after - W_before| / |W_before| per "
        f"component. Intervals: {cfg.n_boot} bootstrap resamples of the contexts or prompts, paired for changes."
    )


def _loss_figure(changes: list[LossChange]) -> Any:
    import plotly.graph_objects as go

    names = [c.name for c in changes]
    fig = go.Figure([
        estimate_bars(names, [c.before for c in changes], "before"),
        estimate_bars(names, [c.after for c in changes], "after"),
        estimate_bars(names, [c.change for c in changes], "change (paired)"),
    ])  # fmt: skip
    fig.add_hline(y=0, line_dash="dot")
    return titled(fig, "Mean per-token loss (95% bootstrap CI)", "text", "nats per token")


def _token_rows(contexts: list[Context]) -> list[list[Any]]:
    return [
        ["".join(c.tokens[: c.focus])[-60:], c.tokens[c.focus], f"{c.loss_a:.3f}", f"{c.loss_b:.3f}", f"{c.diff:+.3f}"]
        for c in contexts
    ]


def _circuit_section(report: Report, result: RewiringResult) -> None:
    c = result.circuit
    if c is None:
        report.add_warnings(result.notes, "Comparisons this pair cannot make")
        return
    import plotly.graph_objects as go

    names = ["old circuit, before", "old circuit, after", "new circuit, after"]
    fig = go.Figure([estimate_bars(names, [c.faithfulness_before, c.faithfulness_after, c.new_faithfulness])])
    fig.add_hline(y=1, line_dash="dot", annotation_text="full model")
    titled(fig, "IOI circuit faithfulness, normalized (95% bootstrap CI over prompts)", "circuit", "faithfulness")
    report.add_figure("The IOI circuit before and after", fig)
    report.add_table(
        "IOI circuit (mean [95% CI])",
        ["quantity", "value"],
        [
            ["edges per circuit", c.before.n_edges],
            ["Jaccard overlap of the edges", f"{c.jaccard:.3f}"],
            ["edge-score correlation", f"{c.score_correlation:.3f}"],
            ["old circuit's faithfulness retained (after / before)", f"{c.retained:.3f}"],
            ["old circuit's faithfulness change (paired)", c.faithfulness_change.text()],
            ["full model's IOI metric before", c.logit_diff_before.text()],
            ["its change (paired)", c.logit_diff_change.text()],
            ["verdict", result.circuit_verdict()],
        ],
    )


def rewiring_report(result: RewiringResult, *, before: str, after: str) -> Report:
    """The report of ``circuitscope study rewiring``."""
    from circuitscope.studies.rewiring import HYPOTHESIS

    report = Report("Study: fine-tuning as rewiring", f"{before} -> {after}")
    report.add_answer("Answer", [result.answer()])
    report.add_text("Hypothesis and method", [HYPOTHESIS, _method(result)])
    changes = [result.in_domain] + ([result.out_of_domain] if result.out_of_domain is not None else [])
    report.add_figure("Loss before and after", _loss_figure(changes))
    columns = ["context", "token", "loss before", "loss after", "change"]
    for change in changes:
        report.add_table(f"Most improved tokens, {change.name}", columns, _token_rows(change.improved))
        report.add_table(f"Most worsened tokens, {change.name}", columns, _token_rows(change.worsened))
    heads = result.heads
    grid = head_heatmap(heads.change, colorscale="RdBu", hover="importance change", zmid=0)
    grid.update_layout(title=f"Head importance after minus before (correlation {heads.correlation:.3f})")
    report.add_figure("Head-ablation importance", grid)
    report.add_figure("Weight change per component", plot_weight_diff(result.weights))
    if result.attention is not None and result.cka is not None:
        report.add_figure("Attention-pattern change per head", plot_attention_diff(result.attention))
        report.add_figure("Residual-stream CKA per layer", plot_cka(result.cka))
    _circuit_section(report, result)
    return report
