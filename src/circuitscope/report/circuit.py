"""The circuit report: the graph drawn layer by layer, the faithfulness curve, the strongest edges."""

from __future__ import annotations

import math

from circuitscope.circuits.circuit import Circuit
from circuitscope.circuits.faithfulness import FaithfulnessCurve, plot_curve
from circuitscope.circuits.view import circuit_svg
from circuitscope.report.html import Report

__all__ = ["circuit_report"]


def _fmt(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.3f}"


def circuit_report(
    circuit: Circuit, curve: FaithfulnessCurve | None = None, top: int = 40, max_drawn: int = 150
) -> Report:
    """A self-contained HTML report of one circuit (and the curve it was chosen from)."""
    task = circuit.task
    steps = f", {circuit.steps} steps" if circuit.method == "eap-ig" else ""
    report = Report(
        title=f"Circuit: {task.get('name', 'task')} on {circuit.model_name}",
        subtitle=f"{circuit.method}{steps}; ablation: {circuit.ablation}; metric: {task.get('metric', '?')}; "
        f"{task.get('n_prompts', '?')} prompts",
    )
    kpis = {"edges kept": f"{circuit.n_edges} / {circuit.graph.n_edges}", "nodes": str(len(circuit.nodes))}
    faith = circuit.info.get("faithfulness")
    if isinstance(faith, dict):
        kpis["faithfulness (normalized)"] = _fmt(float(faith.get("normalized") or math.nan))
        kpis["metric: circuit / full"] = f"{_fmt(float(faith['value']))} / {_fmt(float(faith['full']))}"
        kpis["metric with no edges"] = _fmt(float(faith["ablated"]))
    if "seconds" in circuit.info:
        kpis["scoring time"] = f"{float(circuit.info['seconds']):.1f} s"
    report.add_kpis("Summary", kpis)
    shown = min(circuit.n_edges, max_drawn)
    report.add_html(
        "Graph",
        '<p class="caption">Layers run top to bottom. Edge width is |score|; red edges are those whose ablation '
        "lowers the metric (the behaviour needs them), blue ones raise it. Edges into a head end at its query "
        "(left), key (middle) or value (right) input. Hover for names and scores."
        + (f" Showing the {shown} strongest of {circuit.n_edges} edges." if shown < circuit.n_edges else "")
        + "</p>"
        f'<div style="overflow-x:auto">{circuit_svg(circuit, max_edges=max_drawn)}</div>',
    )
    if curve is not None:
        report.add_figure(
            "Faithfulness against edges kept",
            plot_curve(curve, chosen=circuit.n_edges),
            caption="Top-n edges by |score| kept, every other edge ablated at its receiver; 1 = the full model's "
            "metric, 0 = the metric with every edge ablated.",
        )
    rows: list[list[object]] = [[s, r, v] for s, r, v in circuit.edge_list()[:top]]
    report.add_table("Strongest edges", ["sender", "receiver", "score"], rows,
                     caption="Score: estimated change of the mean metric when the edge alone is ablated.")  # fmt: skip
    return report
