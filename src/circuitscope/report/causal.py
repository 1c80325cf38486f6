"""The causal report: logit lens, direct logit attribution, activation and attribution patching and the top
heads of a :class:`~circuitscope.analysis.causal.CausalAnalysis`, as one self-contained HTML page.

Every figure says which prompts it shows: a mean over all prompt pairs, the pairs of one template
(position-resolved patching), or the example prompt, which the page prints with its positions' roles
(IO, S1, S2, END for IOI). :func:`add_causal_sections` adds the same sections to another page (the IOI
circuit report puts them after its answer); ``head_roles`` then names each top head's class in words.
"""

from __future__ import annotations

import html

import torch

from circuitscope.analysis.causal import CausalAnalysis, HeadSummary
from circuitscope.report.dla import plot_heads, plot_layers
from circuitscope.report.figures import component_names
from circuitscope.report.html import Report, token_html
from circuitscope.report.logit_lens import plot_logit_lens, plot_top_tokens
from circuitscope.report.patching import plot_attribution_scatter, plot_patching
from circuitscope.report.roles import labelled_positions, position_roles
from circuitscope.tasks.task import Task

__all__ = ["add_causal_sections", "attention_summary", "causal_report"]


def _example_roles(task: Task) -> dict[int, str]:
    """The roles of the first prompt's positions."""
    end = int(task.answer_pos[0])
    tokens = [int(t) for t in task.clean_tokens[0, : end + 1]]
    return position_roles(tokens, int(task.correct[0]), int(task.incorrect[0]), end, ioi=task.name == "ioi")


def attention_summary(head: HeadSummary, tokens: list[str], roles: dict[int, str], k: int = 3) -> str:
    """Where ``head`` looks from the last position of the example prompt: ``S2 ' John'·12 0.41, ...``."""
    row = torch.tensor(head.pattern[-1])
    best = row.topk(min(k, len(row)))
    parts = []
    for weight, pos in zip(best.values.tolist(), best.indices.tolist(), strict=True):
        role = f"{roles[pos]} " if pos in roles else ""
        token = repr(tokens[pos]) if pos < len(tokens) else "?"
        parts.append(f"{role}{token}·{pos} {weight:.2f}")
    return ", ".join(parts)


def _pattern_figure(head: HeadSummary, labels: list[str]) -> object:
    import plotly.graph_objects as go

    n = len(head.pattern)
    fig = go.Figure(
        go.Heatmap(
            z=head.pattern, x=labels[:n], y=labels[:n], colorscale="Blues", zmin=0, zmax=1,
            colorbar={"tickformat": ".1f"}, hovertemplate="query %{y}<br>key %{x}<br>attention %{z:.3f}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(
        title=f"L{head.layer}H{head.head} attention (the example prompt)", xaxis_title="key", yaxis_title="query",
        yaxis={"autorange": "reversed"}, height=460, margin={"l": 120, "r": 20, "t": 50, "b": 120},
    )  # fmt: skip
    return fig


def _role_words(head: HeadSummary, head_roles: dict[tuple[int, int], str] | None) -> str:
    if head_roles is None:
        return ""
    role = head_roles.get((head.layer, head.head))
    return f" Its head class: {role}." if role else " It is in none of the head classes."


def _role_cell(head: HeadSummary, head_roles: dict[tuple[int, int], str] | None) -> str:
    if head_roles is None:
        return "circuit not run"
    return head_roles.get((head.layer, head.head), "none")


def _summary(a: CausalAnalysis, tokens: list[str], roles: dict[int, str],
             head_roles: dict[tuple[int, int], str] | None) -> list[str]:  # fmt: skip
    lines = [
        f"On {len(a.task)} {a.task.name} prompts the model's mean logit difference (correct minus incorrect answer) "
        f"is {a.clean_logit_diff:.2f} on the clean prompts and {a.corrupted_logit_diff:.2f} on the corrupted ones; "
        f"the correct answer beats the incorrect one in {a.clean_accuracy:.0%} of clean prompts and is the top "
        f"prediction in {a.clean_top1:.0%}.",
    ]
    for h in a.top_heads:
        effect = "raises" if h.dla > 0 else "lowers"
        lines.append(
            f"L{h.layer}H{h.head}: patching its clean output into the corrupted run recovers {h.patching:+.2f} of the "
            f"clean-minus-corrupted gap (mean over all prompts); it directly {effect} the logit difference by "
            f"{abs(h.dla):.2f}. From the last position of the example prompt it attends to "
            f"{attention_summary(h, tokens, roles)}.{_role_words(h, head_roles)}"
        )
    best_layer = int(a.dla.attn.abs().argmax())
    lines.append(
        f"Attribution patching agrees with activation patching on head outputs with Pearson r = "
        f"{a.head_correlation.pearson:.2f} (Spearman {a.head_correlation.spearman:.2f}); the attention layer with the "
        f"largest direct effect is layer {best_layer} ({float(a.dla.attn[best_layer]):+.2f})."
    )
    return lines


def _example_html(a: CausalAnalysis, tokens: list[str], roles: dict[int, str]) -> str:
    role_list = ", ".join(f"{r} = {tokens[p]!r}·{p}" for p, r in sorted(roles.items()) if p < len(tokens))
    positional = a.positional_task
    return (
        "<p>The example prompt (prompt 1 of the task): the logit-lens grid and the attention patterns show it; "
        "every other figure is a mean over prompts.</p>"
        f"<p><b>clean</b> {token_html(tokens)}</p><p><b>corrupted</b> {html.escape(a.task.corrupted_prompts[0])}</p>"
        f"<p><b>positions</b> {html.escape(role_list)}</p>"
        f"<p>The residual-stream patching grid averages {len(positional)} prompts of one length; its columns are "
        f"labelled with the tokens of its first prompt: <i>{html.escape(positional.clean_prompts[0])}</i></p>"
    )


def add_causal_sections(
    report: Report, analysis: CausalAnalysis, head_roles: dict[tuple[int, int], str] | None = None
) -> Report:
    """Add the causal analysis' sections to ``report`` (``head_roles``: each circuit head's class in words)."""
    a = analysis
    report.add_kpis(
        "Causal analysis: headline",
        {
            "clean logit diff": f"{a.clean_logit_diff:.2f}",
            "corrupted logit diff": f"{a.corrupted_logit_diff:.2f}",
            "clean accuracy": f"{a.clean_accuracy:.0%}",
            "corrupted accuracy": f"{a.corrupted_accuracy:.0%}",
            "clean top-1": f"{a.clean_top1:.0%}",
        },
    )
    first = a.task.clean_tokens[0, : int(a.task.answer_pos[0]) + 1]
    tokens = _str_tokens(a, first)
    roles = _example_roles(a.task)
    labels = labelled_positions(tokens, roles)
    report.add_text("Summary", _summary(a, tokens, roles, head_roles))
    report.add_html("Example prompt", _example_html(a, tokens, roles))
    _add_lens_and_dla(report, a, labels)
    _add_patching(report, a)
    for head in a.top_heads:
        report.add_figure(
            f"Attention of L{head.layer}H{head.head}", _pattern_figure(head, labels),
            f"The example prompt. From the last position: {attention_summary(head, tokens, roles)}.",
        )  # fmt: skip
    report.add_table(
        "Top heads",
        ["head", "circuit class", "patching score", "direct logit attribution", "attends to (from the last position)"],
        [
            [f"L{h.layer}H{h.head}", _role_cell(h, head_roles), h.patching, h.dla, attention_summary(h, tokens, roles)]
            for h in a.top_heads
        ],
        caption="Scores are means over all prompts; attention is on the example prompt.",
    )
    report.add_table(
        "Top neurons by direct logit attribution",
        ["layer", "neuron", "contribution"],
        [list(t) for t in a.dla.top_neurons(10)],
        caption=f"Mean over all {len(a.task)} prompts.",
    )
    return report


def _add_lens_and_dla(report: Report, a: CausalAnalysis, labels: list[str]) -> None:
    report.add_figure(
        "Logit lens",
        plot_logit_lens(a.lens),
        f"Mean over all {len(a.task)} prompts. The residual stream before each block, decoded through the final "
        "norm. In the first layers the decoded logits can be huge (a lone token embedding through the final norm), "
        "so the logit difference there swings from prompt to prompt; P(correct) and the rank are the steadier "
        "readings.",
    )
    report.add_figure(
        "Logit lens: top tokens",
        plot_top_tokens(a.lens, labels if len(labels) == len(a.lens.str_tokens) else None),
        "The example prompt. A cell names its top token when that token has p >= 0.2; hover any cell for its "
        "five top tokens and their probabilities.",
    )
    report.add_figure("Direct logit attribution by layer", plot_layers(a.dla), f"Mean over all {len(a.task)} prompts.")
    report.add_figure("Direct logit attribution by head", plot_heads(a.dla), f"Mean over all {len(a.task)} prompts.")


def _add_patching(report: Report, a: CausalAnalysis) -> None:
    positional = f"Mean over {len(a.positional_task)} prompts of one length (columns: the tokens of the first)."
    report.add_figure(
        "Activation patching: residual stream", plot_patching(a.resid_patching),
        f"Clean resid_pre patched into the corrupted run at each layer and position. {positional}",
    )  # fmt: skip
    report.add_figure(
        "Activation patching: head outputs", plot_patching(a.head_patching), f"Mean over all {len(a.task)} prompts."
    )
    heads = component_names(a.head_patching.axes, a.head_patching.labels)
    resid = component_names(a.resid_patching.axes, a.resid_patching.labels)
    report.add_figure(
        "Attribution vs activation patching: heads", plot_attribution_scatter(a.head_correlation, names=heads),
        f"One point per head (hover for its name); mean over all {len(a.task)} prompts.",
    )  # fmt: skip
    report.add_figure(
        "Attribution vs activation patching: residual stream",
        plot_attribution_scatter(a.resid_correlation, names=resid),
        f"One point per layer and position (hover for it). {positional}",
    )


def causal_report(analysis: CausalAnalysis, title: str | None = None) -> Report:
    """The HTML report of a causal analysis."""
    a = analysis
    report = Report(
        title or f"Causal analysis of {a.task.name} in {a.model_name}",
        f"{len(a.task)} prompt pairs · metric: logit difference · {a.seconds:.0f} s on this machine",
    )
    warning = a.check.warning
    if warning is not None:
        report.add_warnings([warning])
    return add_causal_sections(report, a)


def _str_tokens(analysis: CausalAnalysis, tokens: torch.Tensor) -> list[str]:
    lens = analysis.lens
    if len(lens.str_tokens) == len(tokens):
        return [str(t) for t in lens.str_tokens]
    return [f"#{int(t)}" for t in tokens]
