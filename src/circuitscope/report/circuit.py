"""The circuit report: the graph drawn layer by layer (SVG), the faithfulness curve, the strongest edges.

The graph: the input sits at the top and the logits at the bottom. Every layer with a node in the
circuit gets a row of attention heads and, below it, a row for its MLP (an MLP reads its own layer's
heads). An edge into a head ends at the head's query, key or value port (left, middle, right); edge
width is |score|, colour its sign. Hovering an edge or a node shows its name and score (SVG
``<title>``; no script).
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

from circuitscope.circuits import FaithfulnessCurve
from circuitscope.circuits.circuit import Circuit
from circuitscope.circuits.graph import Graph
from circuitscope.report.html import Report

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

__all__ = ["circuit_report", "circuit_svg", "plot_curve"]

_W_NODE, _H_NODE = 58, 24
_ROW = 64
_PORT = {"q": -0.3, "k": 0.0, "v": 0.3}
_NEG, _POS = "#c2362b", "#2f62c9"  # ablating lowers the metric / raises it


def circuit_svg(circuit: Circuit, max_edges: int = 150) -> str:
    """An ``<svg>`` element of the circuit's kept edges (the ``max_edges`` strongest)."""
    g = circuit.graph
    edges = circuit.edge_list()[:max_edges]
    used = {"input", "logits"}
    for s, r, _ in edges:
        used.add(s)
        used.add(_owner(g, r))
    layers = sorted({int(n[1:].split(".")[0]) for n in used if n[0] in "am" and n[1].isdigit()})
    row_of, labels = _rows(layers)
    row = row_of["logits"]
    col = _W_NODE + 52  # column pitch: heads 0 .. n_heads - 1, then the MLPs in a column of their own
    left = 130
    width = left + (g.n_heads + 1) * col + 40
    height = (row + 1) * _ROW + 20
    pos: dict[str, tuple[float, float]] = {}
    centre = left + (g.n_heads * col) / 2
    for name in used:
        if name in ("input", "logits"):
            pos[name] = (centre, 20 + row_of[name] * _ROW)
        elif name.startswith("m"):
            pos[name] = (left + g.n_heads * col + col / 2, 20 + row_of[name] * _ROW)
        else:
            layer, head = name[1:].split(".h")
            pos[name] = (left + int(head) * col + col / 2, 20 + row_of[f"a{layer}"] * _ROW)
    biggest = max((abs(s) for *_, s in edges if not math.isnan(s)), default=1.0) or 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="ui-monospace, Menlo, monospace" font-size="11">'
    ]
    for r, text in labels:
        parts.append(f'<text x="8" y="{24 + r * _ROW}" fill="#5b6475">{html.escape(text)}</text>')
    for s, r, score in sorted(edges, key=lambda e: abs(e[2]) if not math.isnan(e[2]) else 0.0):
        parts.append(_edge_path(pos[s], pos[_owner(g, r)], s, r, score, biggest))
    for name in sorted(used):
        x, y = pos[name]
        w = _W_NODE + (30 if name in ("input", "logits") else 0)
        fill = "#eef1f8" if name.startswith(("a", "m")) else "#f6f2e6"
        parts.append(
            f'<g><title>{html.escape(name)}</title><rect x="{x - w / 2:.1f}" y="{y - _H_NODE / 2:.1f}" width="{w}" '
            f'height="{_H_NODE}" rx="5" fill="{fill}" stroke="#9aa3b5"/>'
            f'<text x="{x:.1f}" y="{y + 4:.1f}" text-anchor="middle" fill="#1d2330">{html.escape(name)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _rows(layers: list[int]) -> tuple[dict[str, int], list[tuple[int, str]]]:
    """The drawing's rows: input, then per used layer a head row and an MLP row, then logits; and their labels."""
    row_of: dict[str, int] = {"input": 0}
    labels: list[tuple[int, str]] = [(0, "input")]
    row = 1
    for layer in layers:
        row_of[f"a{layer}"] = row
        row_of[f"m{layer}"] = row + 1
        labels += [(row, f"L{layer} attn"), (row + 1, f"L{layer} MLP")]
        row += 2
    row_of["logits"] = row
    labels.append((row, "logits"))
    return row_of, labels


def _edge_path(
    start: tuple[float, float], end: tuple[float, float], sender: str, receiver: str, score: float, biggest: float
) -> str:
    """The ``<path>`` of one edge, from the bottom of its sender's node into its receiver's port."""
    x0, y0 = start
    y0 += _H_NODE / 2
    x1, y1 = end
    kind = receiver.rsplit("<", 1)[-1].rstrip(">") if "<" in receiver else ""
    x1 += _PORT.get(kind, 0.0) * _W_NODE
    y1 -= _H_NODE / 2
    w = 0.6 + 5.4 * (abs(score) / biggest if not math.isnan(score) else 0.0)
    colour = _NEG if score < 0 else _POS
    dy = max(20.0, (y1 - y0) / 2)
    title = html.escape(f"{sender} -> {receiver}: {score:+.4g}")
    return (
        f'<path d="M{x0:.1f},{y0:.1f} C{x0:.1f},{y0 + dy:.1f} {x1:.1f},{y1 - dy:.1f} {x1:.1f},{y1:.1f}" '
        f'fill="none" stroke="{colour}" stroke-opacity="0.55" stroke-width="{w:.2f}"><title>{title}</title></path>'
    )


def _owner(g: Graph, receiver: str) -> str:
    """The node a receiver's edge is drawn into (k/v of a shared key/value head go to its first query head)."""
    node = receiver.split("<")[0]
    if ".kv" in node:
        layer, kv = node[1:].split(".kv")
        group = g.n_heads // g.n_kv_heads
        return f"a{layer}.h{int(kv) * group}"
    return node


def plot_curve(curve: FaithfulnessCurve, chosen: int | None = None) -> Figure:
    """Normalized faithfulness against the number of edges kept (log x axis)."""
    import plotly.graph_objects as go

    xs = [max(n, 0.5) for n in curve.n_edges]  # 0 edges drawn at 0.5 on the log axis
    fig = go.Figure(
        go.Scatter(
            x=xs,
            y=curve.normalized,
            mode="lines+markers",
            name=curve.method,
            customdata=curve.n_edges,
            hovertemplate="%{customdata} edges: %{y:.3f}<extra></extra>",
        )
    )
    if chosen is not None:
        fig.add_vline(x=max(chosen, 0.5), line_dash="dot", annotation_text=f"circuit: {chosen} edges")
    fig.update_layout(
        title="Faithfulness of the top-n edges",
        xaxis={"title": "edges kept", "type": "log"},
        yaxis={"title": "normalized metric (0 ablated, 1 full model)"},
        height=380,
        margin={"t": 50, "b": 40},
    )
    return fig


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
