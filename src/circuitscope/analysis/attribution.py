"""Attribution patching: a first-order estimate of activation patching for every component at once.

Activation patching puts a clean activation into the corrupted run and measures the metric;
one forward pass per component. Attribution patching (Nanda 2023; Syed, Rager & Conmy 2023)
replaces each of those passes by the first term of a Taylor expansion around the corrupted run::

    metric(patched) - metric(corrupted)  ~=  (clean_act - corrupted_act) . d metric / d act  |corrupted

so one clean forward pass, one corrupted forward pass with gradients kept, and one backward
pass give an estimate for every head, every layer x position and every MLP neuron. The
direction is activation patching's "denoising" one (clean values into the corrupted run), and
the scores use :class:`~circuitscope.analysis.patching.PatchingResult`'s normalisation
(0 = corrupted run, 1 = clean run), so the two are directly comparable:
:func:`attribution_correlation` reports how well they agree.

The estimate is exact wherever the metric is linear in the patched activation (for instance
``ln_final.hook_normalized`` under the logit difference) and can be poor where it is not
(attention patterns that saturate, the probability metric near 0 or 1).

Both runs stop at the final norm; the unembedding is applied only at the answer positions,
so neither the forward nor the backward pass pays for ``pos x d_vocab`` logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float, Int

from circuitscope.analysis.patching import PATCH_HOOKS, PatchingResult
from circuitscope.core.hook_points import HookPoint
from circuitscope.core.hooked_model import HookedModel
from circuitscope.core.names import resolve_names
from circuitscope.engine.grid import AxisName, MetricGrid, component_labels
from circuitscope.errors import ShapeError, UnsupportedModelError
from circuitscope.tasks.metrics import MetricName, evaluate_metric, normalise
from circuitscope.tasks.task import Task

# The names this module exports, one per line: the API spelled out on purpose (alike in shape to others').
__all__ = [
    "ATTRIBUTION_TARGETS",
    "AttributionCorrelation",
    "AttributionResult",
    "AttributionScores",
    "AttributionTarget",
    "HookAttribution",
    "answer_logits",
    "attribution_correlation",
    "attribution_patching",
    "hook_attribution",
]

AttributionTarget = Literal[
    "resid_pre", "attn_out", "mlp_out", "head_out", "head_out_by_pos", "q", "k", "v", "pattern", "neuron"
]
ATTRIBUTION_TARGETS: tuple[str, ...] = (
    "resid_pre", "attn_out", "mlp_out", "head_out", "head_out_by_pos", "q", "k", "v", "pattern", "neuron",
)  # fmt: skip

_HOOK = {**PATCH_HOOKS, "neuron": "mlp.hook_post"}
_FINAL = "ln_final.hook_normalized"


# ---------------------------------------------------------------------------------------------- low level
def answer_logits(
    model: HookedModel,
    tokens: Int[torch.Tensor, "batch pos"],
    answer_pos: Int[torch.Tensor, " batch"],
    names: Sequence[str] = (),
    *,
    grad: bool = False,
) -> tuple[Float[torch.Tensor, "batch d_vocab"], dict[str, torch.Tensor]]:
    """Logits at ``answer_pos`` only, and the activations ``names`` (kept in the graph with ``grad``).

    The forward pass stops at the final norm; the unembedding (and any final logit softcap)
    is applied to one position per prompt.
    """
    if not model.cfg.causal or model.wiring.final_norm is None or model.wiring.unembed is None:
        raise UnsupportedModelError(
            f"attribution needs a causal LM with a final norm and an unembedding ({model.cfg.family})"
        )
    wanted = [n for n in names if n != _FINAL] + [_FINAL]
    hooks: list[tuple[str, object]] = []
    if grad:

        def leaf(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
            # gradients flow from here even if the weights are frozen (requires_grad=False)
            return x.detach().requires_grad_(True)

        def through(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
            # a new tensor object makes every hook site use the returned tensor downstream, so the cached
            # activation is the one on the autograd path (hook_z and hook_q/k/v are otherwise views off it)
            return x.view_as(x)

        hooks.append(("hook_embed", leaf))
        hooks += [(n, through) for n in names if n != "hook_embed"]
    with torch.set_grad_enabled(grad):
        _, cache = model.run_with_cache(tokens, names=wanted, stop_early=True, grad=grad, fwd_hooks=hooks)  # type: ignore[arg-type]
        normed = cache[_FINAL]
        rows = torch.arange(normed.shape[0], device=normed.device)
        logits = model.unembed_resid(normed[rows, answer_pos.to(normed.device)], normed=True)
    return logits, {n: cache[n] for n in names}


@dataclass(frozen=True)
class HookAttribution:
    """Element-wise attribution of arbitrary hook points, before any reduction."""

    effects: dict[str, torch.Tensor]
    """Per hook name: ``(clean - corrupted) * d metric / d act`` summed over the batch (the metric is the
    batch mean), shape of the activation without its batch axis. Summing an entry over a set of elements
    estimates the change of the mean metric when those elements are patched."""
    metric: str
    """Metric name."""
    clean_value: float
    """Mean metric of the clean run."""
    corrupted_value: float
    """Mean metric of the corrupted run."""


def hook_attribution(
    model: HookedModel, task: Task, names: Sequence[str], *, metric: MetricName | None = None
) -> HookAttribution:
    """Attribution patching at any hook points (names or glob patterns, checked against the model).

    One clean forward pass, one corrupted forward pass, one backward pass.
    """
    if isinstance(names, str):
        names = [names]
    resolved = resolve_names(list(names), model.hook_names)
    if task.seq_len > model.cfg.n_ctx:
        raise ShapeError("the task's prompts are longer than the model's context")
    metric = metric or task.metric
    with torch.no_grad():
        clean_logits, clean = answer_logits(model, task.clean_tokens, task.answer_pos, resolved)
    corrupted_logits, corrupted = answer_logits(model, task.corrupted_tokens, task.answer_pos, resolved, grad=True)
    dev = corrupted_logits.device
    values = evaluate_metric(
        metric, corrupted_logits, task.correct.to(dev), task.incorrect.to(dev), clean_logits.to(dev)
    )
    total = values.mean()
    acts = [corrupted[n] for n in resolved]
    grads = torch.autograd.grad(total, acts, allow_unused=True) if all(a.requires_grad for a in acts) else None
    missing = [n for i, n in enumerate(resolved) if grads is None or grads[i] is None]
    if grads is None or missing:
        raise ShapeError(
            f"the metric's gradient does not reach {missing or resolved} in this model, so they cannot be attributed; "
            "choose hook points between the embedding and the final norm"
        )
    effects: dict[str, torch.Tensor] = {}
    for name, act, g in zip(resolved, acts, grads, strict=True):
        effects[name] = ((clean[name].to(act.device) - act.detach()) * g).sum(0)
    clean_value = float(
        evaluate_metric(metric, clean_logits, task.correct.to(dev), task.incorrect.to(dev), clean_logits).mean()
    )
    return HookAttribution(effects, metric, clean_value, float(total.detach()))


# ---------------------------------------------------------------------------------------------- targets
@dataclass(frozen=True, kw_only=True)
class AttributionScores(MetricGrid):
    """Attribution estimate for every component of one target, laid out like a :class:`PatchingResult`.

    ``scores``: estimated normalised metric, 0 = corrupted run, 1 = clean run (comparable to activation
    patching). ``[layer, pos]`` for ``resid_pre``/``attn_out``/``mlp_out``, ``[layer, head]`` for ``head_out``/
    ``q``/``pattern`` (``[layer, kv_head]`` for ``k``/``v``), ``[layer, head, pos]`` for ``head_out_by_pos``,
    ``[layer, neuron]`` for ``neuron`` (summed over positions). ``raw``: estimated metric after the patch
    (corrupted value + first-order change). ``labels["pos"]``: the tokens of the first clean prompt.
    """

    target: str
    """What is attributed (one of ``ATTRIBUTION_TARGETS``)."""


@dataclass(frozen=True)
class AttributionResult:
    """Attribution patching of several targets from the same three passes."""

    targets: dict[str, AttributionScores]
    """Scores per target name."""
    metric: str
    """Metric name."""
    clean_value: float
    """Mean metric of the clean run."""
    corrupted_value: float
    """Mean metric of the corrupted run."""
    tokens: Int[torch.Tensor, "batch pos"]
    """The clean tokens used, BOS included."""

    def __getitem__(self, target: str) -> AttributionScores:
        if target not in self.targets:
            raise KeyError(f"target {target!r} was not computed; this result has {sorted(self.targets)}")
        return self.targets[target]


def _reduce(target: str, per_layer: list[torch.Tensor]) -> tuple[torch.Tensor, tuple[AxisName, ...]]:
    """Sum the element-wise effects of each layer down to the target's components."""
    x = torch.stack(per_layer)  # [layer, ...activation without batch]
    if target in ("resid_pre", "attn_out", "mlp_out"):  # [layer pos d_model]
        return x.sum(-1), ("layer", "pos")
    if target == "head_out_by_pos":  # [layer pos head d_head]
        return x.sum(-1).transpose(1, 2), ("layer", "head", "pos")
    if target in ("head_out", "q"):
        return x.sum((1, 3)), ("layer", "head")
    if target in ("k", "v"):
        return x.sum((1, 3)), ("layer", "kv_head")
    if target == "pattern":  # [layer head query_pos key_pos]
        return x.sum((2, 3)), ("layer", "head")
    return x.sum(1), ("layer", "neuron")  # neuron: [layer pos d_mlp]


def attribution_patching(
    model: HookedModel,
    task: Task,
    targets: Sequence[AttributionTarget] = ATTRIBUTION_TARGETS,  # type: ignore[assignment]
    *,
    metric: MetricName | None = None,
) -> AttributionResult:
    """Attribution-patching estimates for every component of every target in ``targets``.

    One clean forward pass, one corrupted forward pass and one backward pass in total, whatever
    the number of targets.
    """
    if isinstance(targets, str):
        targets = [targets]  # type: ignore[list-item]
    unknown = [t for t in targets if t not in ATTRIBUTION_TARGETS]
    if unknown or not targets:
        raise ShapeError(f"unknown attribution target(s) {unknown}; choose from {ATTRIBUTION_TARGETS}")
    n = model.cfg.n_layers
    hooks = sorted({_HOOK[t] for t in targets})
    names = [f"blocks.{layer}.{h}" for layer in range(n) for h in hooks]
    for name in names:
        model.hook_point(name)  # a family without e.g. mlp.hook_post fails here, clearly
    attribution = hook_attribution(model, task, names, metric=metric)
    clean_value, corrupted_value = attribution.clean_value, attribution.corrupted_value
    d_mlp = attribution.effects[f"blocks.0.{_HOOK['neuron']}"].shape[-1] if "neuron" in targets else None
    out: dict[str, AttributionScores] = {}
    for target in targets:
        per_layer = [attribution.effects[f"blocks.{layer}.{_HOOK[target]}"].float().cpu() for layer in range(n)]
        delta, axes = _reduce(target, per_layer)
        raw = corrupted_value + delta
        out[target] = AttributionScores(
            target=target,
            scores=normalise(raw, clean_value, corrupted_value),
            raw=raw,
            axes=axes,
            labels=component_labels(model, axes, prompt=task.clean_tokens[0], d_mlp=d_mlp),
            metric=attribution.metric,
            clean_value=clean_value,
            corrupted_value=corrupted_value,
        )
    return AttributionResult(out, attribution.metric, clean_value, corrupted_value, task.clean_tokens)


# ---------------------------------------------------------------------------------------------- agreement
# Same shape as src/circuitscope/sae/evaluate.py:SAEEvalResult on purpose: two unrelated results, each field
# with its docstring (the house style); there is no logic in them to share.
@dataclass(frozen=True)
class AttributionCorrelation:
    """How well attribution patching predicts activation patching for one target."""

    target: str
    """The target compared."""
    pearson: float
    """Pearson correlation of the normalised scores (nan if either side is constant)."""
    spearman: float
    """Spearman rank correlation (ties get their average rank)."""
    n: int
    """Number of components compared."""
    attribution: Float[torch.Tensor, " component"]
    """Attribution scores, flattened."""
    patching: Float[torch.Tensor, " component"]
    """Activation patching scores, flattened in the same order."""


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 0..n-1, ties sharing their average rank."""
    order = torch.argsort(x)
    ranks = torch.empty_like(x)
    ranks[order] = torch.arange(len(x), dtype=x.dtype)
    values, inverse = torch.unique(x, return_inverse=True)
    sums = torch.zeros(len(values), dtype=x.dtype).index_add_(0, inverse, ranks)
    counts = torch.zeros(len(values), dtype=x.dtype).index_add_(0, inverse, torch.ones_like(x))
    return (sums / counts)[inverse]


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = float(a.norm() * b.norm())
    return float((a * b).sum()) / denominator if denominator > 0 else float("nan")


def attribution_correlation(attribution: AttributionScores, patching: PatchingResult) -> AttributionCorrelation:
    """Pearson and Spearman correlation between attribution and activation patching of the same target."""
    if attribution.target != patching.target:
        raise ShapeError(f"comparing attribution of {attribution.target!r} with patching of {patching.target!r}")
    if attribution.scores.shape != patching.scores.shape or attribution.metric != patching.metric:
        raise ShapeError(
            f"attribution {tuple(attribution.scores.shape)} ({attribution.metric}) and patching "
            f"{tuple(patching.scores.shape)} ({patching.metric}) do not cover the same components: run both on the "
            "same task with the same metric and every layer"
        )
    a = attribution.scores.detach().double().flatten().cpu()
    b = patching.scores.detach().double().flatten().cpu()
    return AttributionCorrelation(
        target=attribution.target,
        pearson=_pearson(a, b),
        spearman=_pearson(_ranks(a), _ranks(b)),
        n=len(a),
        attribution=a.float(),
        patching=b.float(),
    )
