"""The IOI circuit report: the answer first, then the head classes, the evaluation, then the causal sections.

:func:`ioi_report` draws an :class:`~circuitscope.circuits.ioi.result.IOICircuitResult` (and, when
given, the :class:`~circuitscope.analysis.causal.CausalAnalysis` of the same model) as one page:
warnings at the top; the written answer (:func:`~circuitscope.report.ioi_answer.answer_paragraph`)
with the class-by-class comparison against GPT-2 small's published circuit; per class its step, the
threshold rule's cut, its members with their evidence and every head's score (layer x head); the
circuit's faithfulness, completeness and minimality; then logit lens, DLA and patching.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from circuitscope.analysis.causal import CausalAnalysis
from circuitscope.circuits.ioi.result import HEAD_CLASSES, CircuitEvaluation, ClassFinding, HeadClass, IOICircuitResult
from circuitscope.report.causal import add_causal_sections
from circuitscope.report.figures import layer_heatmap, round_numbers
from circuitscope.report.html import Report, caption_html, figure_html, paragraphs_html, table_html
from circuitscope.report.ioi_answer import CLASS_TITLES, answer_sentences, comparison_rows, head_roles

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

__all__ = ["add_circuit_sections", "ioi_report", "plot_class_scores", "plot_completeness", "plot_minimality"]

_ATTENTION_ORDER = ("END->IO", "END->S1", "END->S2", "S2->S1", "S2->S1+1")
_COLOURS = ["#3558d4", "#c2362b", "#2e9e5b", "#b8860b", "#7b3fb5", "#1b9aaa", "#d2691e"]


def plot_class_scores(finding: ClassFinding) -> Figure:
    """Every head's score in the class's step (layer x head), its members ringed, the cut in the title."""
    import plotly.graph_objects as go

    grid = finding.scores
    n_layers, n_heads = grid.scores.shape
    rows = grid.labels.get("layer", [str(i) for i in range(n_layers)])
    cols = grid.labels.get("head", [str(i) for i in range(n_heads)])
    side = "above" if finding.direction == "positive" else "below"
    fig = layer_heatmap(
        grid.scores.tolist(), cols, rows, colorbar=grid.metric.replace(" ", "<br>", 1),
        hovertemplate="L%{y}H%{x}<br>score %{z:.3f}<extra></extra>",
        title=f"{CLASS_TITLES[finding.name]}: every head's score (members {side} the cut {finding.cut:.3g})",
        xaxis_title="head",
    )  # fmt: skip
    if finding.members:
        fig.add_trace(
            go.Scatter(
                x=[cols[m.head] for m in finding.members], y=[rows[m.layer] for m in finding.members],
                mode="markers", name="member", text=[m.name for m in finding.members],
                marker={"symbol": "circle-open", "size": 18, "color": "black", "line": {"width": 2}},
                hovertemplate="%{text} (member)<extra></extra>",
            )
        )  # fmt: skip
        fig.update_layout(showlegend=False)
    return fig


def plot_completeness(evaluation: CircuitEvaluation) -> Figure:
    """F(C \\ K) against F(M \\ K) for every removal set K, with y = x (on the line: the circuit is complete)."""
    import plotly.graph_objects as go

    points = evaluation.completeness
    kinds = sorted({p.label.split(":")[0] for p in points})
    values = [v for p in points for v in (p.f_circuit, p.f_model)] or [0.0, 1.0]
    lo, hi = min(values), max(values)
    traces = [
        go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x", line={"dash": "dash", "color": "grey"},
                   hoverinfo="skip")
    ]  # fmt: skip
    for i, kind in enumerate(kinds):
        group = [p for p in points if p.label.split(":")[0] == kind]
        traces.append(
            go.Scatter(
                x=[p.f_model for p in group], y=[p.f_circuit for p in group], mode="markers", name=f"{kind} sets",
                marker={"size": 9, "color": _COLOURS[i % len(_COLOURS)]},
                text=[f"{p.label}: K = {', '.join(f'L{a}H{b}' for a, b in p.removed) or 'none'}" for p in group],
                hovertemplate="%{text}<br>F(M\\K) %{x:.3f}<br>F(C\\K) %{y:.3f}<extra></extra>",
            )
        )  # fmt: skip
    fig = go.Figure(traces)
    fig.update_layout(
        title="Completeness: F(C\\K) vs F(M\\K) for each removal set K", xaxis_title="F(M\\K): model without K",
        yaxis_title="F(C\\K): circuit without K", height=440, margin={"l": 60, "r": 20, "t": 50, "b": 60},
    )  # fmt: skip
    return round_numbers(fig)


def plot_minimality(evaluation: CircuitEvaluation) -> Figure:
    """One bar per circuit head: |F(C \\ (K ∪ {v})) - F(C \\ K)|, coloured by class."""
    import plotly.graph_objects as go

    points = evaluation.minimality
    classes: list[HeadClass] = [c for c in HEAD_CLASSES if any(p.head_class == c for p in points)]
    traces = []
    for name in classes:
        group = [p for p in points if p.head_class == name]
        traces.append(
            go.Bar(
                x=[f"L{p.head[0]}H{p.head[1]}" for p in group], y=[p.change for p in group], name=CLASS_TITLES[name],
                marker={"color": _COLOURS[HEAD_CLASSES.index(name) % len(_COLOURS)]},
                text=[", ".join(f"L{a}H{b}" for a, b in p.removed) or "none" for p in group],
                hovertemplate="%{x}: change %{y:.3f}<br>K = %{text}<extra></extra>",
            )
        )  # fmt: skip
    fig = go.Figure(traces)
    fig.update_layout(
        title="Minimality: how much each circuit head matters, given the set K that shows it",
        xaxis_title="circuit head", yaxis_title="|F(C\\(K+v)) - F(C\\K)|", height=400,
        margin={"l": 60, "r": 20, "t": 50, "b": 60},
    )  # fmt: skip
    return round_numbers(fig)


def _member_table(finding: ClassFinding, n_layers: int) -> str:
    members = finding.members
    keys = [k for k in _ATTENTION_ORDER if any(k in m.attention for m in members)]
    keys += sorted({k for m in members for k in m.attention} - set(keys))
    detectors = sorted({k for m in members for k in m.detectors})
    copy = any(m.copy_score is not None for m in members)
    columns = ["head", "relative depth", "score", *(f"attention {k}" for k in keys)]
    columns += ["OV copy score"] * copy + [f"{d.replace('_', ' ')} detector" for d in detectors]
    rows = []
    for m in members:
        row: list[object] = [m.name, f"{m.layer / n_layers:.2f}", m.score, *(m.attention.get(k, "—") for k in keys)]
        row += [m.copy_score if m.copy_score is not None else "—"] * copy
        row += [m.detectors.get(d, "—") for d in detectors]
        rows.append(row)
    return table_html(columns, rows)  # type: ignore[arg-type]


def _class_section(report: Report, finding: ClassFinding, result: IOICircuitResult) -> None:
    rule = result.classes.rule
    title = CLASS_TITLES[finding.name]
    side = "largest" if finding.direction == "positive" else "most negative"
    text = [
        f"Step: {finding.method}. Members have the {side} scores: more than {rule.k_std:g} standard deviations "
        f"from the mean over all {result.n_layers * result.n_heads} heads (cut {finding.cut:.3g}), at most "
        f"{rule.max_heads}."
    ]
    if finding.members:
        body = paragraphs_html(text) + _member_table(finding, result.n_layers)
        heading = f"{title[0].upper()}{title[1:]}: {len(finding.members)} head{'s' * (len(finding.members) > 1)}"
    else:
        text.append(f"This class is empty: no head passed the cut. {finding.note}".strip())
        body = paragraphs_html(text)
        heading = f"{title[0].upper()}{title[1:]}: empty"
    body += figure_html(plot_class_scores(finding)) + caption_html("Mean over the clean prompts; hover for a head.")
    report.add_html(heading, body)


def _evaluation_section(report: Report, result: IOICircuitResult) -> None:
    ev = result.evaluation
    if ev is None:
        report.add_text("Circuit evaluation", "Not evaluated: the circuit is empty or the model cannot do the task.")
        return
    paper = result.reference.faithfulness
    report.add_kpis(
        "Circuit evaluation",
        {
            "F(M): model": f"{ev.f_model:.2f}",
            "F(C): circuit": f"{ev.f_circuit:.2f}",
            "faithfulness F(C)/F(M)": f"{ev.faithfulness:.0%}",
            f"{result.reference.model} (paper)": f"{paper:.0%}" if paper is not None else "not published",
        },
    )
    if ev.completeness:
        rows = [[p.label, ", ".join(f"L{a}H{b}" for a, b in p.removed) or "none", p.f_circuit, p.f_model, p.gap]
                for p in ev.completeness]  # fmt: skip
        report.add_html(
            "Completeness",
            figure_html(plot_completeness(ev))
            + table_html(["set K", "heads removed", "F(C\\K)", "F(M\\K)", "|gap|"], rows)  # type: ignore[arg-type]
            + caption_html(f"Everything ablated is mean-ablated over {ev.n_reference} ABC prompts per template."),
        )
    if ev.minimality:
        report.add_figure(
            "Minimality", plot_minimality(ev), "Hover a bar for the set K (without the head) that shows it matters."
        )


def add_circuit_sections(report: Report, result: IOICircuitResult) -> Report:
    """Add the circuit's sections: warnings, answer and comparison, the classes, the evaluation."""
    report.add_warnings(result.warnings)
    ref = result.reference
    table = table_html(
        ["class", "found here", "relative depth", f"{ref.model} (published)", f"relative depth in {ref.model}"],
        comparison_rows(result),  # type: ignore[arg-type]
    )
    report.add_answer(
        "Answer",
        answer_sentences(result),
        table + caption_html(f"Relative depth = layer / number of layers. Published circuit: {ref.source}."),
    )
    rule = result.classes.rule
    report.add_text(
        "Head classes: how they were found",
        f"The classes were searched top down, as in Wang et al. 2022. In every step a head joins the class when its "
        f"score is more than {rule.k_std:g} standard deviations of all heads' scores from their mean (in the class's "
        f"direction), strongest first, at most {rule.max_heads} heads. Each section below gives the step, its cut and "
        f"every head's score.",
    )
    for name in HEAD_CLASSES:
        _class_section(report, result.classes.classes[name], result)
    _evaluation_section(report, result)
    return report


def ioi_report(analysis: CausalAnalysis | None, circuit: IOICircuitResult | None) -> Report:
    """The IOI page: the circuit's answer, classes and evaluation (when run), then the causal sections."""
    if analysis is None and circuit is None:
        raise ValueError("ioi_report needs a causal analysis, a circuit result, or both")
    model = circuit.model_name if circuit is not None else analysis.model_name  # type: ignore[union-attr]
    parts = []
    if circuit is not None:
        parts.append(f"{circuit.n_prompts} prompts for the circuit ({circuit.seconds:.0f} s)")
    if analysis is not None:
        parts.append(f"{len(analysis.task)} prompt pairs for the causal analysis ({analysis.seconds:.0f} s)")
    title = f"IOI circuit of {model}" if circuit is not None else f"Causal analysis of ioi in {model}"
    report = Report(title, " · ".join(parts) + " · metric: logit difference IO - S")
    if circuit is not None:
        add_circuit_sections(report, circuit)
    if analysis is not None:
        add_causal_sections(report, analysis, head_roles(circuit) if circuit is not None else None)
    return report
