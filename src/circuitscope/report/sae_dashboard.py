"""The SAE feature dashboard page: an index searchable by token, then one section per feature (top and
quantile-band examples shaded by activation, boosted and suppressed logits, activation histogram), drawn
from :class:`~circuitscope.sae.dashboard.FeatureDashboardData`."""

from __future__ import annotations

import html
import os
from pathlib import Path

from circuitscope.report.html import Report, token_html
from circuitscope.sae.dashboard import Example, FeatureDashboardData

__all__ = ["write_dashboard"]


_SEARCH = """
<input id="fsearch" type="search" placeholder="Search features by token (e.g. love)" style="width:320px;padding:6px">
<script>
document.getElementById('fsearch').addEventListener('input', function (e) {
  var q = e.target.value.trim().toLowerCase();
  document.querySelectorAll('tr[data-tokens]').forEach(function (row) {
    row.style.display = (!q || row.getAttribute('data-tokens').indexOf(q) >= 0) ? '' : 'none';
  });
});
</script>
"""


def _examples_html(model_examples: list[Example], vmax: float) -> str:
    rows = []
    for ex in model_examples:
        rows.append(
            f'<div style="margin:3px 0"><span class="caption">{ex.activation:.3g}</span> '
            f"{token_html(ex.tokens, ex.values, vmax=vmax)}</div>"
        )
    return "".join(rows) or '<p class="caption">never fired on these tokens</p>'


def _logits_html(top: list[tuple[str, float]], bottom: list[tuple[str, float]]) -> str:
    def cells(items: list[tuple[str, float]], color: str) -> str:
        return "".join(
            f'<tr><td><code>{html.escape(repr(t))}</code></td><td class="num" style="color:{color}">{v:+.3f}</td></tr>'
            for t, v in items
        )

    return (
        '<div style="display:flex;gap:40px"><table><thead><tr><th>boosts</th><th></th></tr></thead>'
        f"<tbody>{cells(top, '#3558d4')}</tbody></table><table><thead><tr><th>suppresses</th><th></th></tr></thead>"
        f"<tbody>{cells(bottom, '#d44035')}</tbody></table></div>"
    )


def write_dashboard(
    data: FeatureDashboardData, path: str | os.PathLike[str], title: str = "SAE feature dashboards", subtitle: str = ""
) -> Path:
    """Write ``data`` as one self-contained HTML page (index with token search, then one section per feature)."""
    import plotly.graph_objects as go

    report = Report(title, subtitle or f"{len(data.features)} features over {data.n_tokens} tokens")
    rows = []
    for j, f in enumerate(data.features):
        fired_tokens = []
        for ex in data.top_examples[j]:
            i = ex.values.index(max(ex.values))
            fired_tokens.append(ex.tokens[i])
        search = " ".join(fired_tokens + [t for t, _ in data.top_logits[j]]).lower()
        rows.append(
            f'<tr data-tokens="{html.escape(search, quote=True)}"><td><a href="#feature-{f}">{f}</a></td>'
            f'<td class="num">{float(data.density[j]):.3%}</td><td class="num">{float(data.max_activation[j]):.3g}</td>'
            f"<td>{token_html(fired_tokens[:6])}</td>"
            f"<td>{html.escape(', '.join(repr(t) for t, _ in data.top_logits[j][:5]))}</td></tr>"
        )
    index = (
        _SEARCH + "<table><thead><tr><th>feature</th><th>density</th><th>max act</th><th>top-activating tokens</th>"
        f"<th>boosted logits</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    report.add_html("Features", index)
    for j, f in enumerate(data.features):
        vmax = float(data.max_activation[j]) or 1.0
        parts = [
            f'<a id="feature-{f}"></a><div class="kpis"><div class="kpi"><div class="v">{float(data.density[j]):.3%}'
            '</div><div class="k">density</div></div>'
            f'<div class="kpi"><div class="v">{vmax:.3g}</div><div class="k">max activation</div></div></div>',
            "<h3>Top activations</h3>",
            _examples_html(data.top_examples[j], vmax),
        ]
        for label, examples in data.quantile_examples[j]:
            parts.append(f"<h3>Band {html.escape(label)}</h3>{_examples_html(examples, vmax)}")
        parts.append("<h3>Logits (decoder direction through the unembedding)</h3>")
        parts.append(_logits_html(data.top_logits[j], data.bottom_logits[j]))
        sample = data.activation_samples[j]
        if sample.numel():
            fig = go.Figure(go.Histogram(x=sample[:20_000].tolist(), nbinsx=40, marker_color="#3558d4"))
            fig.update_layout(height=220, margin=dict(l=40, r=10, t=10, b=30), xaxis_title="activation")
            parts.append(fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False}))
        report.add_html(f"Feature {f}", "".join(parts))
    return report.write(path)
