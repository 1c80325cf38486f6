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
resuming the clean run at that layer: :func:`~circuitscope.engine.head_ablation.ablate_each_head`)
and reports the metric change as ``[layer, head]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float, Int

from circuitscope.analysis.patching import copies_metric
from circuitscope.core.hook_points import HookPoint
from circuitscope.core.hooked_model import HookedModel
from circuitscope.core.replay import BlockReplay, unembed_at
from circuitscope.engine.grid import AxisName, MetricGrid, ScoreGrid, component_labels
from circuitscope.engine.head_ablation import ablate_each_head
from circuitscope.errors import ShapeError
from circuitscope.progress import OnProgress
from circuitscope.tasks.metrics import MetricName, normalise
from circuitscope.tasks.task import Task

__all__ = [
    "ABLATION_METHODS",
    "AblationMethod",
    "AblationResult",
    "Component",
    "HeadAblationScan",
    "ablate",
    "ablation_hooks",
    "ablation_values",
    "head_ablation_scan",
    "heads",
    "neurons",
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
        index = _resample_picks(task, lengths, own, seed)
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


def _resample_picks(task: Task, lengths: torch.Tensor, own: bool, seed: int) -> torch.Tensor:
    """For each task prompt, the reference prompt it resamples from: drawn (seeded) among those at least as long
    as its answer position needs, never its own pair's row when the references are the task's corrupted prompts
    (``own``)."""
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
    return torch.tensor(picks)


def ablation_hooks(
    components: Sequence[Component], values: dict[str, torch.Tensor]
) -> list[tuple[str, Callable[..., torch.Tensor]]]:
    """The hooks that replace each component by its entry of ``values`` (from :func:`ablation_values`; a hook
    missing from ``values`` is set to zero), one hook per hook name."""
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
@dataclass(frozen=True, kw_only=True)
class AblationResult(ScoreGrid):
    """The task metric with and without an ablation: ``scores`` is the ablated metric per prompt (``("prompt",)``)."""

    method: str
    """``zero``, ``mean`` or ``resample``."""
    components: list[str]
    """What was ablated (hook names with indices)."""
    clean: Float[torch.Tensor, " batch"]
    """Metric per prompt on the clean prompts, nothing ablated."""
    clean_value: float
    """Mean metric of the clean run (``clean.mean()``)."""
    corrupted_value: float
    """Mean metric of the corrupted run (for the normalised score)."""

    # Same shape as src/circuitscope/analysis/head_ablation.py:HeadAblation on purpose: each result names its
    # scores (and clean value) in its own words through properties; an alias has no logic to share.
    @property
    def ablated(self) -> Float[torch.Tensor, " batch"]:
        """Metric per prompt on the clean prompts with the components ablated: the scores."""
        return self.scores

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
    ablated_logits = model.run_with_hooks(task.clean_tokens, fwd_hooks=ablation_hooks(components, values))[
        rows, task.answer_pos
    ]
    clean = copies_metric(task, metric, clean_logits, clean_logits)[0].cpu()
    return AblationResult(
        method=method,
        components=[c.label for c in components],
        metric=metric,
        clean=clean,
        scores=copies_metric(task, metric, ablated_logits, clean_logits)[0].cpu(),
        axes=("prompt",),
        labels={"prompt": [str(i) for i in range(len(task))]},
        clean_value=float(clean.mean()),
        corrupted_value=float(copies_metric(task, metric, corrupted_logits, clean_logits)[0].mean()),
    )


@dataclass(frozen=True, kw_only=True)
class HeadAblationScan(MetricGrid):
    """The metric change from ablating each head on its own: ``scores`` (and ``change``) is the mean metric
    with the head ablated minus the clean run's, ``raw`` the mean metric with the head ablated, ``[layer, head]``."""

    method: str
    """``zero``, ``mean`` or ``resample``."""
    axes: tuple[AxisName, ...] = ("layer", "head")
    """Always ``("layer", "head")``."""


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
    batch_size: int = 256,
    on_progress: OnProgress | None = None,
) -> HeadAblationScan:
    """Ablate every head alone (its ``attn.hook_z``).

    ``batch_size`` bounds the rows of one forward pass, a row being one prompt with one head ablated.
    ``on_progress(stage, done, total)`` is told each forward pass done (default: a progress bar on stderr).
    """
    n, b = model.cfg.n_layers, len(task)
    metric = metric or task.metric
    components = [Component(f"blocks.{layer}.attn.hook_z") for layer in range(n)]
    values = ablation_values(model, task, components, method, reference=reference, per_position=per_position, seed=seed)
    replay = BlockReplay(model, task.clean_tokens)
    rows = torch.arange(b)
    clean_logits = replay.logits_at(task.answer_pos)
    corrupted_logits = model(task.corrupted_tokens)[rows, task.answer_pos]
    clean_value = float(copies_metric(task, metric, clean_logits, clean_logits)[0].mean())
    corrupted_value = float(copies_metric(task, metric, corrupted_logits, clean_logits)[0].mean())

    def measure(final: torch.Tensor, k: int) -> torch.Tensor:
        logits = unembed_at(model, final, task.answer_pos.repeat(k))
        return copies_metric(task, metric, logits, clean_logits).mean(1)

    by_layer = {layer: values[c.hook] for layer, c in enumerate(components) if c.hook in values}
    raw = ablate_each_head(
        replay, by_layer, measure, batch_size=batch_size, stage=f"{method}-ablating heads", on_progress=on_progress
    )
    return HeadAblationScan(
        method=method,
        scores=raw - clean_value,
        raw=raw,
        labels=component_labels(model, ("layer", "head")),
        metric=metric,
        clean_value=clean_value,
        corrupted_value=corrupted_value,
    )
