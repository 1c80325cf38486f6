"""Assemble a self-contained HTML report: text, tables and plotly figures, with plotly.js inlined once.

A report works offline (no CDN, no network) and is written atomically: to a temporary
file beside the target, then renamed, so a failed run never leaves half a report.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from circuitscope.core.files import atomic_write_text

__all__ = ["Report", "caption_html", "figure_html", "page_html", "paragraphs_html", "table_html", "token_html"]

_CSS = """
:root { --ink:#1d2330; --muted:#5b6475; --line:#e3e6ec; --accent:#3558d4; --bg:#fbfbfd; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.55 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color:var(--ink); background:var(--bg); }
header { padding:28px 40px 18px; background:#fff; border-bottom:1px solid var(--line); }
header h1 { margin:0 0 4px; font-size:24px; }
header p { margin:0; color:var(--muted); }
nav { padding:10px 40px; background:#fff; border-bottom:1px solid var(--line); font-size:13px; }
nav a { color:var(--accent); margin-right:14px; text-decoration:none; }
main { max-width:1180px; margin:0 auto; padding:10px 40px 60px; }
section { background:#fff; border:1px solid var(--line); border-radius:10px; padding:18px 22px; margin:22px 0; }
section h2 { margin:0 0 10px; font-size:18px; }
.caption { color:var(--muted); font-size:13px; margin:6px 0 0; }
.kpis { display:flex; flex-wrap:wrap; gap:14px; }
.kpi { border:1px solid var(--line); border-radius:8px; padding:10px 16px; min-width:150px; }
.kpi .v { font-size:22px; font-weight:600; }
.kpi .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
table { border-collapse:collapse; font-size:13px; margin-top:6px; }
th, td { border-bottom:1px solid var(--line); padding:5px 10px; text-align:left; }
th { color:var(--muted); font-weight:600; }
td.num { text-align:right; font-variant-numeric: tabular-nums; }
code, .tok { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size:12.5px; }
.tok { display:inline-block; padding:1px 2px; margin:1px 0; border-radius:3px; white-space:pre; }
section.warnings { border-color:#e0a800; background:#fff8e1; }
section.warnings h2 { color:#8a5a00; }
section.answer { border-color:var(--accent); }
.cell-note { color:var(--muted); font-style:italic; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:20px; }
"""


@dataclass
class _Section:
    title: str
    body: str
    anchor: str
    css_class: str = ""


@dataclass
class Report:
    """An HTML report built section by section."""

    title: str
    """Shown as the page title and heading."""
    subtitle: str = ""
    """One line under the heading (model, task, settings)."""
    sections: list[_Section] = field(default_factory=list)

    def _add(self, title: str, body: str, css_class: str = "") -> None:
        anchor = f"s{len(self.sections) + 1}"
        self.sections.append(_Section(title, body, anchor, css_class))

    def add_warnings(self, messages: list[str], title: str = "Warnings") -> None:
        """Messages a reader must see before the rest (highlighted; nothing is added when there are none)."""
        if messages:
            items = "".join(f"<li>{html.escape(m)}</li>" for m in messages)
            self._add(title, f"<ul>{items}</ul>", "warnings")

    def add_answer(self, title: str, paragraphs: list[str], trusted_html: str = "") -> None:
        """The page's answer (escaped paragraphs, then optional HTML made by circuitscope), highlighted."""
        self._add(title, paragraphs_html(paragraphs) + trusted_html, "answer")

    def add_text(self, title: str, paragraphs: str | list[str]) -> None:
        """Plain text (escaped); a list gives several paragraphs."""
        self._add(title, paragraphs_html([paragraphs] if isinstance(paragraphs, str) else paragraphs))

    def add_kpis(self, title: str, values: dict[str, str]) -> None:
        """A row of headline numbers."""
        cells = "".join(
            f'<div class="kpi"><div class="v">{html.escape(v)}</div><div class="k">{html.escape(k)}</div></div>'
            for k, v in values.items()
        )
        self._add(title, f'<div class="kpis">{cells}</div>')

    def add_table(self, title: str, columns: list[str], rows: list[list[Any]], caption: str = "") -> None:
        self._add(title, table_html(columns, rows) + caption_html(caption))

    def add_figure(self, title: str, figure: Any, caption: str = "") -> None:
        """A plotly figure (``plotly.graph_objects.Figure``), drawn without loading plotly.js again."""
        self._add(title, figure_html(figure) + caption_html(caption))

    def add_html(self, title: str, trusted_html: str) -> None:
        """Raw HTML made by circuitscope itself (e.g. highlighted tokens); never user input."""
        self._add(title, trusted_html)

    def to_html(self) -> str:
        from plotly.offline import get_plotlyjs

        nav = "".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in self.sections)
        body = "".join(
            f'<section id="{s.anchor}"{_class_attr(s.css_class)}><h2>{html.escape(s.title)}</h2>{s.body}</section>'
            for s in self.sections
        )
        return page_html(
            self.title, self.subtitle, f"<nav>{nav}</nav><main>{body}</main>", head=f"<script>{get_plotlyjs()}</script>"
        )

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (temporary file, then rename) and return the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, self.to_html())  # shared (0o644): a report is meant to be read by others
        return target


def page_html(title: str, subtitle: str, body: str, head: str = "") -> str:
    """The page shell every report shares: the house style, a heading, ``body`` (trusted HTML), a footer."""
    from circuitscope._version import __version__

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>{head}</head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header>{body}"
        f"<footer>circuitscope {html.escape(__version__)} · {stamp}</footer></body></html>\n"
    )


def table_html(columns: list[str], rows: list[list[Any]]) -> str:
    """A table (floats to 4 significant digits, text escaped), for a section built of several parts."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for value in row:
            if isinstance(value, float):
                cells.append(f'<td class="num">{value:.4g}</td>')
            elif isinstance(value, int):
                cells.append(f'<td class="num">{value}</td>')
            else:
                cells.append(f"<td>{html.escape(str(value))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure_html(figure: Any) -> str:
    """A plotly figure's ``<div>`` (plotly.js is inlined once, by :meth:`Report.to_html`)."""
    return str(
        figure.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False, "responsive": True})
    )


def paragraphs_html(paragraphs: list[str]) -> str:
    """Escaped paragraphs."""
    return "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)


def caption_html(caption: str) -> str:
    """A grey caption paragraph (nothing for an empty caption)."""
    return f'<p class="caption">{html.escape(caption)}</p>' if caption else ""


def _class_attr(css_class: str) -> str:
    return f' class="{css_class}"' if css_class else ""


def token_html(tokens: list[str], values: list[float] | None = None, vmax: float | None = None) -> str:
    """Tokens as inline spans, shaded by value (blue positive, red negative) with the value as a tooltip."""
    if values is None:
        return "".join(f'<span class="tok">{html.escape(t)}</span>' for t in tokens)
    scale = vmax if vmax else max((abs(v) for v in values), default=1.0) or 1.0
    spans = []
    for tok, value in zip(tokens, values, strict=True):
        a = min(abs(value) / scale, 1.0)
        rgb = "53,88,212" if value >= 0 else "212,64,53"
        spans.append(
            f'<span class="tok" style="background:rgba({rgb},{a:.2f})" title="{value:.4g}">{html.escape(tok)}</span>'
        )
    return "".join(spans)


def dumps(payload: Any) -> str:
    """JSON for ``--json`` output and embedded data (NaN-safe)."""
    return json.dumps(payload, indent=2, default=str, allow_nan=False)
