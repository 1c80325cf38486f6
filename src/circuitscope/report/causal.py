"""The causal report: which components make a model do a task (IOI, or a user's prompt pairs).

:func:`causal_analysis` runs the causal toolkit on a task and returns every result in one
typed value; :func:`causal_report` draws it as a self-contained HTML page and
:meth:`CausalAnalysis.to_json` gives the same numbers for ``--json``.
"""

from __future__ import annotations

import html
import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from circuitscope.analysis.attribution import AttributionCorrelation, attribution_correlation, attribution_patching
from circuitscope.analysis.attribution import plot_scatter as plot_attribution_scatter
from circuitscope.analysis.dla import DLAResult, direct_logit_attribution, plot_heads, plot_layers
from circuitscope.analysis.logit_lens import LogitLensResult, logit_lens, plot_top_tokens
from circuitscope.analysis.logit_lens import plot as plot_lens
from circuitscope.analysis.patching import PatchingResult, activation_patching
from circuitscope.analysis.patching import plot as plot_patching
from circuitscope.core.hooked_model import HookedModel
from circuitscope.progress import status
from circuitscope.report.html import Report, token_html
from circuitscope.tasks.metrics import evaluate_metric
from circuitscope.tasks.task import Task

__all__ = ["CausalAnalysis", "HeadSummary", "causal_analysis", "causal_report"]


@dataclass(frozen=True)
class HeadSummary:
    """One of the heads that matter most."""

    layer: int
    head: int
    patching: float
    """Normalised activation-patching score of its output."""
    dla: float
    """Its direct contribution to the logit difference."""
    attends_to: list[tuple[str, float]]
    """From the answer position of the first prompt: the tokens it attends to most, with weights."""
    pattern: list[list[float]]
    """Its attention pattern on the first prompt (query x key)."""


@dataclass(frozen=True)
class CausalAnalysis:
    """Everything the causal report shows."""

    model_name: str
    task: Task
    positional_task: Task
    """The pairs used for position-resolved plots (all of one token length)."""
    clean_logit_diff: float
    corrupted_logit_diff: float
    clean_accuracy: float
    """Fraction of prompts whose correct answer beats the incorrect one."""
    corrupted_accuracy: float
    clean_top1: float
    """Fraction of prompts whose top prediction is the correct answer."""
    lens: LogitLensResult
    dla: DLAResult
    resid_patching: PatchingResult
    head_patching: PatchingResult
    head_correlation: AttributionCorrelation
    resid_correlation: AttributionCorrelation
    top_heads: list[HeadSummary]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        def grid(t: torch.Tensor) -> list[Any]:
            return [[_finite(v) for v in row] for row in t.tolist()]

        return {
            "model": self.model_name,
            "task": self.task.name,
            "n_prompts": len(self.task),
            "metric": "logit_diff",
            "logit_diff": {"clean": self.clean_logit_diff, "corrupted": self.corrupted_logit_diff},
            "accuracy": {
                "clean": self.clean_accuracy,
                "corrupted": self.corrupted_accuracy,
                "clean_top1": self.clean_top1,
            },
            "logit_lens": {
                "layers": self.lens.layers,
                "logit_diff": [_finite(v) for v in self.lens.logit_diff.tolist()],
                "correct_prob": [_finite(v) for v in self.lens.correct_prob.tolist()],
            },
            "dla": {
                "total": self.dla.total,
                "attn": self.dla.attn.tolist(),
                "mlp": self.dla.mlp.tolist(),
                "heads": grid(self.dla.heads),
                "top_neurons": [{"layer": layer, "neuron": n, "value": v} for layer, n, v in self.dla.top_neurons(10)],
            },
            "activation_patching": {
                "positions": self.resid_patching.labels["pos"],
                "resid_pre": grid(self.resid_patching.scores),
                "head_out": grid(self.head_patching.scores),
            },
            "attribution_vs_activation": {
                "head_out": {
                    "pearson": _finite(self.head_correlation.pearson),
                    "spearman": _finite(self.head_correlation.spearman),
                },
                "resid_pre": {
                    "pearson": _finite(self.resid_correlation.pearson),
                    "spearman": _finite(self.resid_correlation.spearman),
                },
            },
            "top_heads": [
                {"layer": h.layer, "head": h.head, "patching": h.patching, "dla": h.dla, "attends_to": h.attends_to}
                for h in self.top_heads
            ],
            "seconds": round(self.seconds, 1),
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _positional_subset(task: Task) -> Task:
    """The pairs sharing the most common length (positions then mean the same thing)."""
    lengths = task.answer_pos.tolist()
    common = max(set(lengths), key=lengths.count)
    return task.subset([i for i, n in enumerate(lengths) if n == common])


@torch.no_grad()
def _accuracy(model: HookedModel, task: Task) -> tuple[float, float, float, float, float]:
    rows = torch.arange(len(task))
    clean = model(task.clean_tokens)[rows, task.answer_pos].float()
    corrupted = model(task.corrupted_tokens)[rows, task.answer_pos].float()
    diff_clean = evaluate_metric("logit_diff", clean, task.correct, task.incorrect)
    diff_corr = evaluate_metric("logit_diff", corrupted, task.correct, task.incorrect)
    top1 = float((clean.argmax(-1) == task.correct).float().mean())
    return (
        float(diff_clean.mean()),
        float(diff_corr.mean()),
        float((diff_clean > 0).float().mean()),
        float((diff_corr > 0).float().mean()),
        top1,
    )


def _top_heads(model: HookedModel, task: Task, heads: PatchingResult, dla: DLAResult, k: int) -> list[HeadSummary]:
    scores = heads.scores
    flat = scores.flatten().abs()
    order = flat.argsort(descending=True)[:k].tolist()
    first = task.subset([0])
    layers = sorted({i // model.cfg.n_heads for i in order})
    with torch.no_grad():
        _, cache = model.run_with_cache(
            first.clean_tokens, names=[f"blocks.{layer}.attn.hook_pattern" for layer in layers]
        )
    ids = first.clean_tokens[0, : int(first.answer_pos[0]) + 1]
    tokens = model.to_str_tokens(ids) if model.tokenizer is not None else [f"#{int(t)}" for t in ids]
    out = []
    for i in order:
        layer, head = divmod(i, model.cfg.n_heads)
        pattern = cache["pattern", layer][0, head, : len(tokens), : len(tokens)]
        row = pattern[len(tokens) - 1]
        best = row.topk(min(3, len(tokens)))
        out.append(
            HeadSummary(
                layer=layer,
                head=head,
                patching=float(scores[layer, head]),
                dla=float(dla.heads[layer, head]),
                attends_to=[
                    (tokens[int(j)], round(float(w), 3)) for w, j in zip(best.values, best.indices, strict=True)
                ],
                pattern=pattern.tolist(),
            )
        )
    return out


def causal_analysis(
    model: HookedModel,
    task: Task,
    *,
    model_name: str = "model",
    positional_task: Task | None = None,
    n_top_heads: int = 4,
    batch_rows: int = 256,
) -> CausalAnalysis:
    """Run logit lens, DLA, activation and attribution patching on ``task`` (logit-difference metric)."""
    start = time.perf_counter()
    task = task.with_metric("logit_diff")
    positional = (positional_task or _positional_subset(task)).with_metric("logit_diff")
    with status("Baselines, logit lens and direct logit attribution"):
        clean_ld, corr_ld, clean_acc, corr_acc, top1 = _accuracy(model, task)
        lens = logit_lens(model, task)
        dla = direct_logit_attribution(model, task)
    head_patching = activation_patching(model, task, "head_out", batch_rows=batch_rows)
    resid = activation_patching(model, positional, "resid_pre", batch_rows=batch_rows)
    with status("Attribution patching"):
        head_attr = attribution_patching(model, task, ["head_out"])["head_out"]
        resid_attr = attribution_patching(model, positional, ["resid_pre"])["resid_pre"]
    top = _top_heads(model, task, head_patching, dla, n_top_heads)
    return CausalAnalysis(
        model_name=model_name,
        task=task,
        positional_task=positional,
        clean_logit_diff=clean_ld,
        corrupted_logit_diff=corr_ld,
        clean_accuracy=clean_acc,
        corrupted_accuracy=corr_acc,
        clean_top1=top1,
        lens=lens,
        dla=dla,
        resid_patching=resid,
        head_patching=head_patching,
        head_correlation=attribution_correlation(head_attr, head_patching),
        resid_correlation=attribution_correlation(resid_attr, resid),
        top_heads=top,
        seconds=time.perf_counter() - start,
    )


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
        plot_lens(a.lens),
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
