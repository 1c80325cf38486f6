"""Draw a circuit as an SVG graph: layers top to bottom, edge width by |score|, colour by sign.

The input sits at the top and the logits at the bottom. Every layer with a node in the circuit
gets a row of attention heads and, below it, a row for its MLP (an MLP reads its own layer's
heads). An edge into a head ends at the head's query, key or value port (left, middle, right).
Hovering an edge or a node shows its name and score (SVG ``<title>``; no script).
"""

from __future__ import annotations

import html
import math

from circuitscope.circuits.circuit import Circuit
from circuitscope.circuits.graph import Graph

__all__ = ["circuit_svg"]

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
    # rows: input, then per used layer a head row and an MLP row, then logits
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
        x0, y0 = pos[s]
        y0 += _H_NODE / 2
        target = _owner(g, r)
        x1, y1 = pos[target]
        kind = r.rsplit("<", 1)[-1].rstrip(">") if "<" in r else ""
        x1 += _PORT.get(kind, 0.0) * _W_NODE
        y1 -= _H_NODE / 2
        w = 0.6 + 5.4 * (abs(score) / biggest if not math.isnan(score) else 0.0)
        colour = _NEG if score < 0 else _POS
        dy = max(20.0, (y1 - y0) / 2)
        title = html.escape(f"{s} -> {r}: {score:+.4g}")
        parts.append(
            f'<path d="M{x0:.1f},{y0:.1f} C{x0:.1f},{y0 + dy:.1f} {x1:.1f},{y1 - dy:.1f} {x1:.1f},{y1:.1f}" '
            f'fill="none" stroke="{colour}" stroke-opacity="0.55" stroke-width="{w:.2f}"><title>{title}</title></path>'
        )
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


def _owner(g: Graph, receiver: str) -> str:
    """The node a receiver's edge is drawn into (k/v of a shared key/value head go to its first query head)."""
    node = receiver.split("<")[0]
    if ".kv" in node:
        layer, kv = node[1:].split(".kv")
        group = g.n_heads // g.n_kv_heads
        return f"a{layer}.h{int(kv) * group}"
    return node
