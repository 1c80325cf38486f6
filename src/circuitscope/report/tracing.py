"""The causal-tracing report: ROME-style heatmaps of a factual prompt, as one self-contained HTML page."""

from __future__ import annotations

import html
from collections.abc import Sequence

from circuitscope.analysis.tracing_plot import plot_heads, plot_neurons, plot_trace, token_labels
from circuitscope.analysis.tracing_results import HeadTraceResult, NeuronTraceResult, TraceBaseline, TraceResult
from circuitscope.errors import ShapeError
from circuitscope.report.html import Report, token_html

__all__ = ["strongest_cells", "trace_report"]


def strongest_cells(result: TraceResult, k: int = 5) -> list[tuple[int, int, float]]:
    """``(layer, position, effect)`` of the k (layer, token) restorations with the largest indirect effect."""
    flat = result.indirect_effect.flatten()
    seq = result.indirect_effect.shape[1]
    idx = flat.topk(min(k, flat.numel())).indices
    return [(int(i) // seq, int(i) % seq, float(flat[i])) for i in idx]


def _baseline(
    traces: Sequence[TraceResult], heads: HeadTraceResult | None, neurons: NeuronTraceResult | None
) -> TraceBaseline:
    for r in (*traces, heads, neurons):
        if r is not None:
            return r.baseline
    raise ShapeError("a trace report needs at least one trace: pass traces, heads or neurons")


def trace_report(
    model_name: str,
    traces: Sequence[TraceResult],
    heads: HeadTraceResult | None = None,
    neurons: NeuronTraceResult | None = None,
    seconds: float | None = None,
) -> Report:
    """The report: KPIs, the prompt with its subject, one heatmap per trace, heads and neurons if given."""
    base: TraceBaseline = _baseline(traces, heads, neurons)
    corruption = (
        f"Gaussian noise, std {base.noise_std:.4g} at hook_embed"
        if base.noise_std is not None
        else "resampled subjects: " + ", ".join(repr(s) for s in base.replacement_subjects)
    )
    report = Report(
        f"Causal trace: {base.subject!r} -> {base.target!r}",
        f"{model_name} · {base.n_samples} samples · {corruption}"
        + (f" · {seconds:.0f} s" if seconds is not None else ""),
    )
    kpis = {
        "target": repr(base.target),
        "p clean": f"{base.clean_prob:.4f}",
        "p corrupted": f"{base.corrupted_prob:.4f}",
        "corruption": base.corruption,
        "samples": str(base.n_samples),
    }
    report.add_kpis("Clean and corrupted runs", kpis)
    start, stop = base.subject_range
    values = [1.0 if start <= i < stop else 0.0 for i in range(len(base.tokens))]
    report.add_html(
        "Prompt (subject shaded)",
        f"<p>{token_html(base.tokens, values, 1.0)}</p>"
        f'<p class="caption">Subject tokens {start}..{stop - 1} are corrupted; the probability of '
        f"{html.escape(repr(base.target))} is measured after the last token.</p>",
    )
    labels = token_labels(base)
    for result in traces:
        report.add_figure(
            f"Restored {result.kind}" + (f" (window {result.window})" if result.kind != "resid" else ""),
            plot_trace(result),
            "Each cell: probability of the target when the clean state at that token and layer is put back "
            "into the corrupted run (mean over samples). Tokens marked * are the subject.",
        )
        rows: list[list[object]] = [[la, labels[p], e] for la, p, e in strongest_cells(result, 8)]
        report.add_table(f"Strongest {result.kind} restorations", ["layer", "token", "indirect effect"], rows)
    if heads is not None:
        report.add_figure(
            "Single attention heads",
            plot_heads(heads),
            "Indirect effect of restoring one head's output (attn.hook_z) at the tokens named in the title.",
        )
        report.add_table(
            "Heads with the largest effect", ["layer", "head", "indirect effect"], [list(t) for t in heads.top(10)]
        )
    if neurons is not None:
        report.add_figure(
            f"Single MLP neurons, layer {neurons.layer}",
            plot_neurons(neurons),
            f"{len(neurons.neurons)} neurons restored one at a time (mlp.hook_post) at "
            + ", ".join(labels[p] for p in neurons.positions)
            + ".",
        )
    return report
