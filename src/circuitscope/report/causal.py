"""The causal report: logit lens, direct logit attribution, activation and attribution patching and the top
heads of a :class:`~circuitscope.analysis.causal.CausalAnalysis`, as one self-contained HTML page."""

from __future__ import annotations

import html

import torch

from circuitscope.analysis.causal import CausalAnalysis, HeadSummary
from circuitscope.report.dla import plot_heads, plot_layers
from circuitscope.report.html import Report, token_html
from circuitscope.report.logit_lens import plot_logit_lens, plot_top_tokens
from circuitscope.report.patching import plot_attribution_scatter, plot_patching

__all__ = ["causal_report"]


def _pattern_figure(head: HeadSummary, tokens: list[str]) -> object:
    import plotly.graph_objects as go

    labels = [f"{t!r}·{i}" for i, t in enumerate(tokens)]
    fig = go.Figure(go.Heatmap(z=head.pattern, x=labels, y=labels, colorscale="Blues", zmin=0, zmax=1))
    fig.update_layout(
        title=f"L{head.layer}H{head.head} attention (first prompt)", xaxis_title="key", yaxis_title="query",
        yaxis={"autorange": "reversed"}, height=420,
    )  # fmt: skip
    return fig


def _summary(analysis: CausalAnalysis) -> list[str]:
    a = analysis
    lines = [
        f"On {len(a.task)} {a.task.name} prompts the model's mean logit difference (correct minus incorrect answer) "
        f"is {a.clean_logit_diff:.2f} on the clean prompts and {a.corrupted_logit_diff:.2f} on the corrupted ones; "
        f"the correct answer beats the incorrect one in {a.clean_accuracy:.0%} of clean prompts and is the top "
        f"prediction in {a.clean_top1:.0%}.",
    ]
    for h in a.top_heads:
        where = ", ".join(f"{t!r} ({w:.2f})" for t, w in h.attends_to)
        role = "raises" if h.dla > 0 else "lowers"
        lines.append(
            f"L{h.layer}H{h.head}: patching its clean output into the corrupted run recovers {h.patching:+.2f} of the "
            f"clean-minus-corrupted gap; it directly {role} the logit difference by {abs(h.dla):.2f}. From the final "
            f"token it attends to {where}."
        )
    best_layer = int(a.dla.attn.abs().argmax())
    lines.append(
        f"Attribution patching agrees with activation patching on head outputs with Pearson r = "
        f"{a.head_correlation.pearson:.2f} (Spearman {a.head_correlation.spearman:.2f}); the attention layer with the "
        f"largest direct effect is layer {best_layer} ({float(a.dla.attn[best_layer]):+.2f})."
    )
    return lines


def causal_report(analysis: CausalAnalysis, title: str | None = None) -> Report:
    """The HTML report of a causal analysis."""
    a = analysis
    report = Report(
        title or f"Causal analysis of {a.task.name} in {a.model_name}",
        f"{len(a.task)} prompt pairs · metric: logit difference · {a.seconds:.0f} s on this machine",
    )
    report.add_kpis(
        "Headline",
        {
            "clean logit diff": f"{a.clean_logit_diff:.2f}",
            "corrupted logit diff": f"{a.corrupted_logit_diff:.2f}",
            "clean accuracy": f"{a.clean_accuracy:.0%}",
            "corrupted accuracy": f"{a.corrupted_accuracy:.0%}",
            "clean top-1": f"{a.clean_top1:.0%}",
        },
    )
    report.add_text("Summary", _summary(a))
    example = a.task.subset([0])
    first = example.clean_tokens[0, : int(example.answer_pos[0]) + 1]
    str_tokens = [str(t) for t in _str_tokens(a, first)]
    report.add_html(
        "Example",
        "<p><b>clean</b> " + token_html(str_tokens) + "</p><p><b>corrupted</b> "
        + html.escape(a.task.corrupted_prompts[0]) + "</p>",
    )  # fmt: skip
    report.add_figure(
        "Logit lens",
        plot_logit_lens(a.lens),
        "The residual stream before each block, decoded through the final norm. In the first layers the decoded "
        "logits can be huge (a lone token embedding through the final norm), so the logit difference there "
        "swings from prompt to prompt; P(correct) and the rank are the steadier readings.",
    )
    report.add_figure("Logit lens: top tokens", plot_top_tokens(a.lens))
    report.add_figure("Direct logit attribution by layer", plot_layers(a.dla))
    report.add_figure("Direct logit attribution by head", plot_heads(a.dla))
    report.add_figure(
        "Activation patching: residual stream", plot_patching(a.resid_patching),
        f"Clean resid_pre patched into the corrupted run at each layer and position "
        f"({len(a.positional_task)} prompts of one length).",
    )  # fmt: skip
    report.add_figure("Activation patching: head outputs", plot_patching(a.head_patching))
    report.add_figure("Attribution vs activation patching: heads", plot_attribution_scatter(a.head_correlation))
    report.add_figure(
        "Attribution vs activation patching: residual stream", plot_attribution_scatter(a.resid_correlation)
    )
    for head in a.top_heads:
        report.add_figure(f"Attention of L{head.layer}H{head.head}", _pattern_figure(head, str_tokens))
    report.add_table(
        "Top heads",
        ["head", "patching score", "direct logit attribution", "attends to (from the final token)"],
        [
            [f"L{h.layer}H{h.head}", h.patching, h.dla, ", ".join(f"{t!r} {w:.2f}" for t, w in h.attends_to)]
            for h in a.top_heads
        ],
    )
    report.add_table(
        "Top neurons by direct logit attribution",
        ["layer", "neuron", "contribution"],
        [list(t) for t in a.dla.top_neurons(10)],
    )
    return report


def _str_tokens(analysis: CausalAnalysis, tokens: torch.Tensor) -> list[str]:
    lens = analysis.lens
    if len(lens.str_tokens) == len(tokens):
        return lens.str_tokens
    return [f"#{int(t)}" for t in tokens]
