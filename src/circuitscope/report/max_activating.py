"""HTML of max-activating examples: one example as token spans (its position highlighted), a table per unit."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from circuitscope.analysis import ActivatingExample, MaxActivating

__all__ = ["example_html", "max_activating_html"]


def example_html(example: ActivatingExample) -> str:
    """One example as inline token spans with the position highlighted and its activation as a tooltip."""
    spans = []
    for i, tok in enumerate(example.context):
        text = html.escape(tok)
        if i == example.highlight:
            spans.append(
                f'<span class="tok" style="background:rgba(53,88,212,0.85);color:#fff;font-weight:600" '
                f'title="{example.activation:.4g}">{text}</span>'
            )
        else:
            spans.append(f'<span class="tok">{text}</span>')
    return "".join(spans)


def max_activating_html(result: MaxActivating, units: Sequence[str] | None = None) -> str:
    """An HTML snippet: per unit, a table of its examples (activation, document:position, context)."""
    parts = []
    for label in units if units is not None else [u.label for u in result.units]:
        rows = "".join(
            f"<tr><td>{e.activation:.4g}</td><td>{e.doc}:{e.pos}</td><td>{example_html(e)}</td></tr>"
            for e in result.examples[label]
        )
        parts.append(
            f"<h3>{html.escape(label)}</h3><table><thead><tr><th>activation</th><th>doc:pos</th>"
            f"<th>context</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    return "\n".join(parts)
