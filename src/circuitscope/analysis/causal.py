"""The causal analysis: which components make a model do a task (IOI, or a user's prompt pairs).

:func:`causal_analysis` runs the causal toolkit on a task and returns every result in one
typed value; the causal report draws it as a self-contained HTML page and
:meth:`CausalAnalysis.to_json` gives the same numbers for ``--json``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from circuitscope.analysis._logit_lens import LogitLensResult, logit_lens
from circuitscope.analysis.attribution import AttributionCorrelation, attribution_correlation, attribution_patching
from circuitscope.analysis.dla import DLAResult, direct_logit_attribution
from circuitscope.analysis.patching import PatchingResult, activation_patching
from circuitscope.core.hooked_model import HookedModel
from circuitscope.progress import OnProgress, stage
from circuitscope.tasks.accuracy import TaskCheck
from circuitscope.tasks.metrics import evaluate_metric
from circuitscope.tasks.task import Task

# The names this module exports, one per line: the API spelled out on purpose (alike in shape to others').
__all__ = ["CausalAnalysis", "HeadSummary", "causal_analysis"]


# Same shape as src/circuitscope/sae/evaluate.py:SAEEvalResult on purpose: two unrelated results, each field
# with its docstring (the house style); there is no logic in them to share.
@dataclass(frozen=True)
class HeadSummary:
    """One of the heads that matter most."""

    layer: int
    """The head's layer."""
    head: int
    """Its index in the layer."""
    patching: float
    """Normalised activation-patching score of its output."""
    dla: float
    """Its direct contribution to the logit difference."""
    attends_to: list[tuple[str, float]]
    """From the answer position of the first prompt: the tokens it attends to most, with weights."""
    pattern: list[list[float]]
    """Its attention pattern on the first prompt (query x key)."""


# Same shape as src/circuitscope/analysis/experts.py:RoutingStats on purpose: an unrelated result, fields one per
# line. Same shape as src/circuitscope/analysis/heads_analysis.py:HeadsAnalysis on purpose: likewise.
@dataclass(frozen=True)
class CausalAnalysis:
    """Everything the causal report shows."""

    model_name: str
    """The model, as named on the command line."""
    task: Task
    """The clean and corrupted prompt pairs every figure is measured on."""
    positional_task: Task
    """The pairs used for position-resolved plots (all of one token length)."""
    clean_logit_diff: float
    """Mean logit difference (correct minus incorrect answer) on the clean prompts."""
    corrupted_logit_diff: float
    """The same on the corrupted prompts."""
    clean_accuracy: float
    """Fraction of prompts whose correct answer beats the incorrect one."""
    corrupted_accuracy: float
    """The same on the corrupted prompts."""
    clean_top1: float
    """Fraction of prompts whose top prediction is the correct answer."""
    lens: LogitLensResult
    """The logit lens over layers on the positional task."""
    dla: DLAResult
    """Direct logit attribution by component, head and neuron."""
    resid_patching: PatchingResult
    """Residual-stream activation patching by layer and position."""
    head_patching: PatchingResult
    """Head-output activation patching by layer and head."""
    head_correlation: AttributionCorrelation
    """Attribution patching's head scores against the activation-patching ones."""
    resid_correlation: AttributionCorrelation
    """The same for the residual stream."""
    top_heads: list[HeadSummary]
    """The heads that matter most, by absolute patching score."""
    seconds: float
    """Wall-clock time of the whole analysis."""

    @property
    def check(self) -> TaskCheck:
        """Whether the model can do the task at all (its :attr:`~TaskCheck.warning` heads the report when not)."""
        return TaskCheck(
            task=self.task.name,
            n_prompts=len(self.task),
            accuracy=self.clean_accuracy,
            top1=self.clean_top1,
            logit_diff=self.clean_logit_diff,
            corrupted_logit_diff=self.corrupted_logit_diff,
        )

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
            "warning": self.check.warning,
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


# Same shape as src/circuitscope/circuits/_faithfulness.py:CircuitRunner on purpose: a model, a task and keyword
# options one per line (batch size, seed, ...) is how entry points take their arguments; nothing to share.
def causal_analysis(
    model: HookedModel,
    task: Task,
    *,
    model_name: str = "model",
    positional_task: Task | None = None,
    n_top_heads: int = 4,
    batch_size: int = 256,
    on_progress: OnProgress | None = None,
) -> CausalAnalysis:
    """Run logit lens, DLA, activation and attribution patching on ``task`` (logit-difference metric).

    ``batch_size`` bounds the rows of one patching forward pass (a row: one prompt with one patch);
    ``on_progress(stage, done, total)`` is told each stage's progress (None: the default display).
    """
    start = time.perf_counter()
    task = task.with_metric("logit_diff")
    positional = (positional_task or _positional_subset(task)).with_metric("logit_diff")
    with stage("Baselines, logit lens and direct logit attribution", on_progress):
        clean_ld, corr_ld, clean_acc, corr_acc, top1 = _accuracy(model, task)
        lens = logit_lens(model, task)
        dla = direct_logit_attribution(model, task)
    head_patching = activation_patching(model, task, "head_out", batch_size=batch_size, on_progress=on_progress)
    resid = activation_patching(model, positional, "resid_pre", batch_size=batch_size, on_progress=on_progress)
    with stage("Attribution patching", on_progress):
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
