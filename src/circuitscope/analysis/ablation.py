"""Ablations: replace components by zero, by their mean, or by their value on other prompts, and measure.

A :class:`Component` is a hook point and, optionally, indices on its component axis: heads for
hooks with a head axis (``attn.hook_z``, ``hook_q``/``k``/``v``, ``hook_rot_q``/``rot_k``,
``hook_result``: axis 2; ``hook_attn_scores``/``hook_pattern``: axis 1), neurons or dimensions
for the rest (last axis: ``mlp.hook_post`` neurons, ``hook_resid_pre`` dimensions, ...).
:func:`heads` and :func:`neurons` build the common ones.

Methods (all applied at every position of the task's clean prompts):

- ``zero``: the component is set to 0.
- ``mean``: the component's mean over a reference distribution: the task's corrupted prompts, or
  a token batch given as ``reference``. The mean is taken per position (over the reference
  prompts that have a real token there) when the reference is at least as long as the task's
  prompts and ``per_position`` is on; otherwise over every real position of every reference prompt.
- ``resample``: prompt i gets the component's value on another reference prompt (drawn with
  ``seed``; never its own pair when the reference is the task's corrupted prompts, and only
  prompts at least as long as prompt i), position by position (Chan et al.'s resampling ablation).

:func:`ablate` measures the task metric with and without one ablation, per prompt and on average.
:func:`head_ablation_scan` ablates every head on its own (K heads of a layer per forward pass,
resuming the clean run at that layer) and reports the metric change as ``[layer, head]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float, Int

from circuitscope.core.hook_points import HookPoint
from circuitscope.core.hooked_model import HookedModel
from circuitscope.core.replay import BlockReplay
from circuitscope.errors import ShapeError
from circuitscope.progress import progress
from circuitscope.tasks.metrics import MetricName, evaluate_metric, normalise
from circuitscope.tasks.task import Task

__all__ = [
    "ABLATION_METHODS",
    "AblationMethod",
    "AblationResult",
    "Component",
    "HeadAblationScan",
    "ablate",
    "ablation_values",
    "head_ablation_scan",
    "heads",
    "neurons",
    "plot",
    "plot_scan",
]

AblationMethod = Literal["zero", "mean", "resample"]
ABLATION_METHODS: tuple[str, ...] = ("zero", "mean", "resample")

_HEAD_AXIS_2 = ("attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_rot_q", "attn.hook_rot_k", "attn.hook_z",
                "attn.hook_result")  # fmt: skip
_HEAD_AXIS_1 = ("attn.hook_attn_scores", "attn.hook_pattern")


@dataclass(frozen=True)
class Component:
    """A hook point, or some heads / neurons of it."""

    hook: str
    """Full hook name, e.g. ``blocks.6.attn.hook_z`` or ``blocks.3.mlp.hook_post``."""
    index: tuple[int, ...] | None = None
    """Indices on the component axis (heads, or neurons / dimensions on the last axis); None = all of it."""

    def __post_init__(self) -> None:
        if self.index is not None:
            object.__setattr__(self, "index", tuple(int(i) for i in self.index))
            if not self.index:
                raise ShapeError(f"component {self.hook!r} has an empty index; give indices or None for all of it")

    @property
    def axis(self) -> int:
        """The axis ``index`` selects on (of the activation with its batch axis)."""
        if self.hook.endswith(_HEAD_AXIS_2):
            return 2
        if self.hook.endswith(_HEAD_AXIS_1):
            return 1
        return -1

    @property
    def position_axis(self) -> int:
        """The (query) position axis."""
        return 2 if self.hook.endswith(_HEAD_AXIS_1) else 1

    @property
    def label(self) -> str:
        return self.hook if self.index is None else f"{self.hook}[{', '.join(map(str, self.index))}]"


def heads(pairs: Iterable[tuple[int, int]]) -> list[Component]:
    """Components for attention heads ``(layer, head)``: their ``attn.hook_z`` (one component per layer)."""
    by_layer: dict[int, list[int]] = {}
    for layer, head in pairs:
        by_layer.setdefault(int(layer), []).append(int(head))
    if not by_layer:
        raise ShapeError("no heads given")
    return [Component(f"blocks.{layer}.attn.hook_z", tuple(hs)) for layer, hs in sorted(by_layer.items())]


def neurons(layer: int, index: Sequence[int]) -> Component:
    """MLP neurons of one layer (``mlp.hook_post``)."""
    return Component(f"blocks.{layer}.mlp.hook_post", tuple(index))


# ---------------------------------------------------------------------------------------------- values
def _check(model: HookedModel, components: Sequence[Component], method: str) -> None:
    if method not in ABLATION_METHODS:
        raise ShapeError(f"unknown ablation method {method!r}; choose one of {ABLATION_METHODS}")
    if not components:
        raise ShapeError("no components to ablate")
    for c in components:
        if not isinstance(c, Component):
            raise TypeError(f"components are circuitscope.analysis.ablation.Component, got {c!r}")
        model.hook_point(c.hook)  # a clear HookNameError naming the closest valid names


def _select(x: torch.Tensor, c: Component) -> tuple[slice | list[int], ...]:
    """The index expression selecting the component in ``x`` (checked against its shape)."""
    if c.index is None:
        return (slice(None),) * x.ndim
    axis = c.axis % x.ndim
    size = x.shape[axis]
    bad = [i for i in c.index if not -size <= i < size]
    if bad:
        raise ShapeError(f"{c.label}: index {bad} out of range for axis {axis} of size {size} (shape {tuple(x.shape)})")
    where: list[slice | list[int]] = [slice(None)] * x.ndim
    where[axis] = list(c.index)
    return tuple(where)


def _fit(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``value`` cut to ``like``'s non-batch shape and broadcast over its batch."""
    cut = value[(slice(None), *(slice(0, s) for s in like.shape[1:]))]
    return cut.expand(like.shape[0], *cut.shape[1:]) if cut.shape[0] == 1 else cut


def _reference(
    model: HookedModel, task: Task, reference: Int[torch.Tensor, "batch pos"] | None
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Reference tokens, their lengths, and whether they are the task's own corrupted prompts."""
    if reference is None:
        return task.corrupted_tokens, task.answer_pos + 1, True
    if not isinstance(reference, torch.Tensor) or reference.ndim != 2 or reference.dtype.is_floating_point:
        raise ShapeError("reference must be token ids [batch, pos] (every position a real token)")
    return reference, torch.full((reference.shape[0],), reference.shape[1]), False


@torch.no_grad()
def ablation_values(
    model: HookedModel,
    task: Task,
    components: Sequence[Component],
    method: AblationMethod,
    *,
    reference: Int[torch.Tensor, "batch pos"] | None = None,
    per_position: bool = True,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """What each component's hook is replaced with, per hook name, broadcastable to ``[batch, ...]`` of the
    task's clean run (only the components' indices of it are used)."""
    _check(model, components, method)
    names = list(dict.fromkeys(c.hook for c in components))
    if method == "zero":
        return {}
    tokens, lengths, own = _reference(model, task, reference)
    cache = model.cache_activations(tokens, names)
    out: dict[str, torch.Tensor] = {}
    pos = torch.arange(tokens.shape[1])
    real = (pos[None, :] < lengths[:, None]).float()  # [ref, pos]
    covers = tokens.shape[1] >= task.seq_len
    if method == "resample":
        if not covers:
            raise ShapeError(
                f"resampling needs reference prompts at least as long as the task's ({tokens.shape[1]} < "
                f"{task.seq_len} tokens)"
            )
        generator = torch.Generator().manual_seed(seed)
        need = task.answer_pos + 1
        picks = []
        for i in range(len(task)):
            ok = (lengths >= need[i]).clone()
            if own:
                ok[i] = False
            candidates = torch.nonzero(ok).flatten()
            if len(candidates) == 0:
                raise ShapeError(
                    f"prompt {i}: no other reference prompt is long enough ({int(need[i])} tokens) to resample from"
                )
            picks.append(int(candidates[torch.randint(len(candidates), (1,), generator=generator)]))
        index = torch.tensor(picks)
        return {n: cache[n][index] for n in names}
    for name in names:
        act = cache[name].float()
        axis = Component(name).position_axis
        shape = [1] * act.ndim
        shape[0], shape[axis] = real.shape
        weight = real.view(shape).to(act.device)
        if per_position and covers:
            total = (act * weight).sum(0, keepdim=True)
            count = weight.sum(0, keepdim=True).clamp(min=1)
            out[name] = (total / count).to(cache[name].dtype)
        elif axis == 1:
            total = (act * weight).sum((0, 1), keepdim=True)
            out[name] = (total / weight.sum()).to(cache[name].dtype)
        else:
            raise ShapeError(
                f"{name}: a mean over positions of an attention pattern is not meaningful; use reference prompts "
                "at least as long as the task's, with per_position=True"
            )
    return out


def _hooks(
    components: Sequence[Component], values: dict[str, torch.Tensor]
) -> list[tuple[str, Callable[..., torch.Tensor]]]:
    by_hook: dict[str, list[Component]] = {}
    for c in components:
        by_hook.setdefault(c.hook, []).append(c)
    hooks: list[tuple[str, Callable[..., torch.Tensor]]] = []
    for name, group in by_hook.items():

        def fn(x: torch.Tensor, hook: HookPoint, group: list[Component] = group) -> torch.Tensor:
            x = x.clone()
            value = values.get(hook.name)
            for c in group:
                where = _select(x, c)
                x[where] = 0 if value is None else _fit(value.to(x.device, x.dtype), x)[where]
            return x

        hooks.append((name, fn))
    return hooks


# ---------------------------------------------------------------------------------------------- ablate
@dataclass(frozen=True)
class AblationResult:
    """The task metric with and without an ablation."""

    method: str
    """``zero``, ``mean`` or ``resample``."""
    components: list[str]
    """What was ablated (hook names with indices)."""
    metric: str
    """Metric name."""
    clean: Float[torch.Tensor, " batch"]
    """Metric per prompt on the clean prompts, nothing ablated."""
    ablated: Float[torch.Tensor, " batch"]
    """Metric per prompt on the clean prompts with the components ablated."""
    corrupted_value: float
    """Mean metric of the corrupted run (for the normalised score)."""

    @property
    def clean_value(self) -> float:
        return float(self.clean.mean())

    @property
    def ablated_value(self) -> float:
        return float(self.ablated.mean())

    @property
    def change(self) -> float:
        """Mean metric change caused by the ablation."""
        return self.ablated_value - self.clean_value

    @property
    def normalised(self) -> float:
        """Ablated mean metric on the 0 = corrupted run, 1 = clean run scale (fraction of performance kept)."""
        return float(normalise(torch.tensor(self.ablated_value), self.clean_value, self.corrupted_value))


def _answer_metric(
    model: HookedModel, task: Task, metric: MetricName, logits: torch.Tensor, clean_logits: torch.Tensor
) -> torch.Tensor:
    copies = logits.shape[0] // len(task)
    return evaluate_metric(
        metric, logits, task.correct.repeat(copies), task.incorrect.repeat(copies), clean_logits.repeat(copies, 1)
    )


@torch.no_grad()
def ablate(
    model: HookedModel,
    task: Task,
    components: Sequence[Component] | Component,
    method: AblationMethod = "zero",
    *,
    reference: Int[torch.Tensor, "batch pos"] | None = None,
    per_position: bool = True,
    metric: MetricName | None = None,
    seed: int = 0,
) -> AblationResult:
    """Ablate ``components`` together on the task's clean prompts and measure the metric."""
    if isinstance(components, Component):
        components = [components]
    metric = metric or task.metric
    values = ablation_values(model, task, components, method, reference=reference, per_position=per_position, seed=seed)
    rows = torch.arange(len(task))
    clean_logits = model(task.clean_tokens)[rows, task.answer_pos]
    corrupted_logits = model(task.corrupted_tokens)[rows, task.answer_pos]
    ablated_logits = model.run_with_hooks(task.clean_tokens, fwd_hooks=_hooks(components, values))[
        rows, task.answer_pos
    ]
    return AblationResult(
        method=method,
        components=[c.label for c in components],
        metric=metric,
        clean=_answer_metric(model, task, metric, clean_logits, clean_logits).cpu(),
        ablated=_answer_metric(model, task, metric, ablated_logits, clean_logits).cpu(),
        corrupted_value=float(_answer_metric(model, task, metric, corrupted_logits, clean_logits).mean()),
    )


@dataclass(frozen=True)
class HeadAblationScan:
    """The metric change from ablating each head on its own."""

    method: str
    """``zero``, ``mean`` or ``resample``."""
    change: Float[torch.Tensor, "layer head"]
    """Mean metric with the head ablated minus the clean run's."""
    raw: Float[torch.Tensor, "layer head"]
    """Mean metric with the head ablated."""
    axes: tuple[str, ...]
    """``("layer", "head")``."""
    labels: dict[str, list[str]]
    """Tick labels per axis."""
    metric: str
    """Metric name."""
    clean_value: float
    """Mean metric of the clean run."""
    corrupted_value: float
    """Mean metric of the corrupted run."""


@torch.no_grad()
def head_ablation_scan(
    model: HookedModel,
    task: Task,
    method: AblationMethod = "zero",
    *,
    reference: Int[torch.Tensor, "batch pos"] | None = None,
    per_position: bool = True,
    metric: MetricName | None = None,
    seed: int = 0,
    batch_rows: int = 256,
) -> HeadAblationScan:
    """Ablate every head alone (its ``attn.hook_z``); ``batch_rows`` bounds prompts x heads per forward pass."""
    n, n_heads, b = model.cfg.n_layers, model.cfg.n_heads, len(task)
    metric = metric or task.metric
    components = [Component(f"blocks.{layer}.attn.hook_z") for layer in range(n)]
    values = ablation_values(model, task, components, method, reference=reference, per_position=per_position, seed=seed)
    replay = BlockReplay(model, task.clean_tokens)
    rows = torch.arange(b)
    clean_logits = replay.logits_at(task.answer_pos)
    corrupted_logits = model(task.corrupted_tokens)[rows, task.answer_pos]
    clean_value = float(_answer_metric(model, task, metric, clean_logits, clean_logits).mean())
    corrupted_value = float(_answer_metric(model, task, metric, corrupted_logits, clean_logits).mean())
    copies = max(1, batch_rows // b)
    work = [(layer, list(range(s, min(s + copies, n_heads)))) for layer in range(n) for s in range(0, n_heads, copies)]
    raw = torch.empty(n, n_heads)
    for layer, chunk in progress(work, f"{method}-ablating heads", total=len(work)):
        k = len(chunk)
        name = f"blocks.{layer}.attn.hook_z"
        value = values.get(name)

        def fn(
            x: torch.Tensor, hook: HookPoint, chunk: list[int] = chunk, value: torch.Tensor | None = value
        ) -> torch.Tensor:
            x = x.clone()
            for i, h in enumerate(chunk):
                block = x[i * b : (i + 1) * b]
                block[:, :, h] = 0 if value is None else _fit(value.to(x.device, x.dtype), block)[:, :, h]
            return x

        with model.hooks([(name, fn)]):
            logits = replay.run(layer, replay.resid_pre[layer].repeat(k, 1, 1), task.answer_pos.repeat(k))
        raw[layer, chunk] = _answer_metric(model, task, metric, logits, clean_logits).view(k, b).mean(1).cpu()
    return HeadAblationScan(
        method=method,
        change=raw - clean_value,
        raw=raw,
        axes=("layer", "head"),
        labels={"layer": [str(i) for i in range(n)], "head": [str(h) for h in range(n_heads)]},
        metric=metric,
        clean_value=clean_value,
        corrupted_value=corrupted_value,
    )


# ---------------------------------------------------------------------------------------------- plots
def plot_scan(scan: HeadAblationScan, title: str | None = None) -> object:
    """A [layer, head] heatmap of the metric change."""
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Heatmap(
            z=scan.change.tolist(),
            x=scan.labels["head"],
            y=scan.labels["layer"],
            colorscale="RdBu",
            zmid=0,
            colorbar={"title": f"{scan.metric}<br>change"},
            hovertemplate="L%{y}H%{x}<br>change %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title or f"{scan.method.capitalize()}-ablating each head: change in {scan.metric}",
        xaxis_title="head",
        yaxis_title="layer",
        yaxis={"autorange": "reversed"},
        height=max(300, 22 * scan.change.shape[0] + 120),
        margin={"l": 60, "r": 20, "t": 50, "b": 60},
    )
    return fig


def plot(result: AblationResult, title: str | None = None) -> object:
    """Per-prompt metric, clean against ablated, with y = x."""
    import plotly.graph_objects as go

    a, b = result.clean.tolist(), result.ablated.tolist()
    lo, hi = min(a + b), max(a + b)
    fig = go.Figure(
        [
            go.Scatter(x=a, y=b, mode="markers", name="prompt", marker={"size": 7, "opacity": 0.8}),
            go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="unchanged", line={"dash": "dash", "color": "grey"}),
        ]
    )
    what = ", ".join(result.components[:4]) + (" ..." if len(result.components) > 4 else "")
    fig.update_layout(
        title=title
        or f"{result.method.capitalize()}-ablating {what}: {result.metric} {result.clean_value:.3f} -> "
        f"{result.ablated_value:.3f}",
        xaxis_title=f"{result.metric}, clean",
        yaxis_title=f"{result.metric}, ablated",
        height=450,
        margin={"l": 60, "r": 20, "t": 50, "b": 60},
    )
    return fig
