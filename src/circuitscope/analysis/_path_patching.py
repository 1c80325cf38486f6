"""Path patching (Wang et al. 2022): the effect of one head on chosen receivers, and on nothing else.

For a sender head and a set of receivers (the q, k and/or v inputs of some heads, or the
logits), with everything else held at its clean value:

1. run the clean and corrupted prompts and cache every head's output (``attn.hook_z``);
2. run the clean prompts with the sender's ``hook_z`` taken from the corrupted run and every
   other head's ``hook_z`` frozen at its clean value (MLPs are recomputed), and cache the
   receivers' inputs (``attn.hook_q/k/v``, the projections' outputs, or for the logits the
   final residual stream ``blocks.{n-1}.hook_resid_post``);
3. run the clean prompts once more, patching only the receivers' inputs with those values,
   and measure the metric.

``positions`` (one per prompt) restricts step 3 to one position per prompt: the receivers' inputs
take their step-2 values there only and keep their clean values elsewhere, as Wang et al. patch
the name movers' queries at END only, or the S-inhibition heads' keys at S2 (templates differ in
length, so the position is per prompt).

This is a "noising" experiment (a corrupted value into the clean run), the opposite direction
of :mod:`~circuitscope.analysis.patching`. Scores are the fraction of the corrupted-minus-clean
change that the path carries: 0 = the clean run, 1 = as far as the whole corrupted run.

Under grouped-query attention ``hook_k`` / ``hook_v`` have key/value heads, so a receiver
head's k or v input is its key/value head's, which the other query heads of its group share.

:func:`path_patching` scores every sender head with K senders of one layer per forward pass
(K stacked copies of the prompts), resuming the clean forward pass at the sender's layer and
the receivers' first layer (:class:`~circuitscope.core.replay.BlockReplay`), stopping step 2
once the receivers' inputs exist; for the logits, step 2's output is step 3's. Senders at or
after the last receiver's layer cannot reach it and score exactly 0 without a forward pass.
:func:`naive_path_patching` is the two-full-forward-passes-per-sender reference.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Int
from torch import Tensor

from circuitscope.analysis.patching import copies_metric
from circuitscope.core.cache import ActivationCache
from circuitscope.core.capabilities import require_attention
from circuitscope.core.hook_points import HookPoint
from circuitscope.core.hooked_model import HookedModel
from circuitscope.core.replay import BlockReplay
from circuitscope.engine.batching import batched
from circuitscope.engine.grid import AxisName, MetricGrid, component_labels
from circuitscope.errors import ShapeError
from circuitscope.progress import OnProgress, track
from circuitscope.tasks.metrics import MetricName, normalise
from circuitscope.tasks.task import Task

__all__ = ["PathPatchingResult", "ReceiverInput", "naive_path_patching", "path_patching"]

ReceiverInput = Literal["q", "k", "v"]
Hook = tuple[str, Callable[..., torch.Tensor | None]]


@dataclass(frozen=True, kw_only=True)
class PathPatchingResult(MetricGrid):
    """Path-patching score of every sender head for one set of receivers, on axes ``("layer", "head")``
    (the sender's layer and head).

    ``scores``: fraction of the corrupted-minus-clean change carried by the path, 0 = clean run,
    1 = corrupted run; ``raw``: the metric after path patching (mean over prompts).
    """

    receivers: str
    """What receives the paths: ``logits``, or e.g. ``q of L9H6, L9H9``."""
    tokens: Int[torch.Tensor, "batch pos"]
    """The clean tokens used, BOS included."""
    axes: tuple[AxisName, ...] = ("layer", "head")
    """Always ``("layer", "head")``: the sender's layer and head."""


class _Stop(Exception):  # noqa: N818 (control flow)
    """Raised once every receiver input of step 2 is cached."""


def _receivers(
    model: HookedModel, receivers: Sequence[tuple[int, int]] | Literal["logits"], inputs: Sequence[ReceiverInput]
) -> tuple[dict[str, list[int] | None], str, int]:
    """Receiver hook -> head indices on its head axis (None = the whole tensor); a label; the sender layer bound."""
    n = model.cfg.n_layers
    if isinstance(receivers, str):
        if receivers != "logits":
            raise ShapeError(f"receivers must be 'logits' or a list of (layer, head) pairs, got {receivers!r}")
        return {f"blocks.{n - 1}.hook_resid_post": None}, "logits", n
    pairs = [(int(layer), int(head)) for layer, head in receivers]
    if not pairs:
        raise ShapeError("no receiver heads given: pass (layer, head) pairs, or receivers='logits'")
    if not inputs or any(i not in ("q", "k", "v") for i in inputs):
        raise ShapeError(f"receiver inputs must be a non-empty subset of ('q', 'k', 'v'), got {tuple(inputs)}")
    group = model.cfg.n_heads // model.cfg.n_kv_heads
    hooks: dict[str, list[int] | None] = {}
    normalised = []
    for layer, head in pairs:
        model.check_layer_head(layer, head)
        layer, head = layer % n, head % model.cfg.n_heads
        normalised.append((layer, head))
        for which in inputs:
            index = head if which == "q" else head // group
            heads = hooks.setdefault(f"blocks.{layer}.attn.hook_{which}", [])
            assert heads is not None
            if index not in heads:
                heads.append(index)
    order = {name: i for i, name in enumerate(model.hook_names)}
    hooks = dict(sorted(hooks.items(), key=lambda kv: order[kv[0]]))
    label = f"{'/'.join(dict.fromkeys(inputs))} of " + ", ".join(f"L{lay}H{h}" for lay, h in sorted(set(normalised)))
    return hooks, label, max(layer for layer, _ in normalised)


def _layer(name: str) -> int:
    return int(name.split(".")[1])


def _check(model: HookedModel, task: Task, label: str, positions: Tensor | None) -> Tensor | None:
    """Refuse prompts longer than the context; the receivers' positions as a ``[batch]`` long tensor."""
    require_attention(model.cfg, "path patching over heads")
    if task.seq_len > model.cfg.n_ctx:
        raise ShapeError("the task's prompts are longer than the model's context")
    if positions is None:
        return None
    if label == "logits":
        raise ShapeError(
            "positions apply to receiver heads' inputs; the logits are read at the answer position: "
            "leave positions out for receivers='logits'"
        )
    positions = torch.as_tensor(positions)
    if positions.shape != (len(task),) or positions.dtype.is_floating_point:
        raise ShapeError(
            f"positions must be one integer position per prompt, shape ({len(task)},), got {tuple(positions.shape)} "
            f"of {positions.dtype}"
        )
    if bool((positions < 0).any()) or bool((positions > task.answer_pos).any()):
        raise ShapeError("positions must lie inside each prompt, between 0 and its answer position")
    return positions.long()


def _result(
    model: HookedModel, task: Task, label: str, metric: str, raw: torch.Tensor, clean: float, corrupted: float
) -> PathPatchingResult:
    # 0 at the clean run, 1 at the corrupted run (normalise's "clean" end is our 1)
    scores = normalise(raw, corrupted, clean)
    return PathPatchingResult(
        receivers=label,
        scores=scores,
        raw=raw,
        labels=component_labels(model, ("layer", "head")),
        metric=metric,
        clean_value=clean,
        corrupted_value=corrupted,
        tokens=task.clean_tokens,
    )


def _set_heads(x: torch.Tensor, heads: list[int] | None, value: torch.Tensor, at: Tensor | None = None) -> torch.Tensor:
    """``x`` with the given heads (axis 2) or everything taken from ``value``; at one position per row
    (``at``, ``[rows]``) or at every position (None)."""
    if at is None:
        if heads is None:
            return value.clone()
        x = x.clone()
        x[:, :, heads] = value[:, :, heads]
        return x
    x = x.clone()
    rows = torch.arange(x.shape[0], device=x.device)
    at = at.to(x.device)
    if heads is None:
        x[rows, at] = value[rows, at]
    else:
        part = x[rows, at]
        part[:, heads] = value[rows, at][:, heads]
        x[rows, at] = part
    return x


@torch.no_grad()
def path_patching(
    model: HookedModel,
    task: Task,
    receivers: Sequence[tuple[int, int]] | Literal["logits"] = "logits",
    *,
    inputs: Sequence[ReceiverInput] = ("q", "k", "v"),
    metric: MetricName | None = None,
    positions: Int[Tensor, " batch"] | None = None,
    batch_size: int = 256,
    on_progress: OnProgress | None = None,
) -> PathPatchingResult:
    """Path patching from every sender head to ``receivers`` (``(layer, head)`` pairs' ``inputs``, or the logits).

    ``positions``: the receivers' inputs are patched at ``positions[i]`` of prompt ``i`` only (None: at every
    position). ``batch_size`` bounds the rows of one forward pass, a row being one clean prompt with one sender
    patched. ``on_progress(stage, done, total)`` is called after each pass (None: a progress display).
    """
    metric = metric or task.metric
    targets, label, bound = _receivers(model, receivers, inputs)
    at = _check(model, task, label, positions)
    base = _Baseline.take(model, task, metric)
    n_heads = model.cfg.n_heads
    raw = torch.full((model.cfg.n_layers, n_heads), base.clean_value)
    copies = max(1, batch_size // len(task))
    work = [(layer, chunk) for layer in range(bound) for chunk in batched(range(n_heads), copies)]
    for layer, chunk in track(work, f"path patching into {label}", on_progress):
        live = {} if label == "logits" else {name: heads for name, heads in targets.items() if _layer(name) > layer}
        logits = _patched_logits(model, task, base, layer, chunk, live, at)
        raw[layer, chunk] = copies_metric(task, metric, logits, base.clean_logits).mean(1)
    return _result(model, task, label, metric, raw, base.clean_value, base.corrupted_value)


@dataclass(frozen=True)
class _Baseline:
    """The clean run (replayable, every head's output kept) and the corrupted one, with their metric values."""

    replay: BlockReplay
    clean_z: dict[str, torch.Tensor]
    corrupted: ActivationCache
    clean_logits: torch.Tensor
    clean_value: float
    corrupted_value: float

    @staticmethod
    def take(model: HookedModel, task: Task, metric: MetricName) -> _Baseline:
        clean_z: dict[str, torch.Tensor] = {}

        def keep(x: torch.Tensor, hook: HookPoint) -> None:
            clean_z[hook.name] = x.detach().clone()

        with model.hooks([("blocks.*.attn.hook_z", keep)]):
            replay = BlockReplay(model, task.clean_tokens)  # the clean run, with every head's output cached
        clean_logits = replay.logits_at(task.answer_pos)
        corrupted_logits, corrupted_cache = model.run_with_cache(task.corrupted_tokens, names="blocks.*.attn.hook_z")
        corrupted_logits = corrupted_logits[torch.arange(len(task)), task.answer_pos]
        clean_value = float(copies_metric(task, metric, clean_logits, clean_logits).mean(1)[0])
        corrupted_value = float(copies_metric(task, metric, corrupted_logits, clean_logits).mean(1)[0])
        return _Baseline(replay, clean_z, corrupted_cache, clean_logits, clean_value, corrupted_value)


def _patched_logits(
    model: HookedModel,
    task: Task,
    base: _Baseline,
    layer: int,
    chunk: list[int],
    live: dict[str, list[int] | None],
    at: Tensor | None,
) -> torch.Tensor:
    """Answer logits with each head of ``chunk`` (one stacked copy of the batch each) patched along its path alone.

    Step 2: from ``layer`` on, the sender outputs its corrupted value and every later head its clean one;
    the receivers' inputs ``live`` are recorded (the logits themselves when ``live`` is empty). Step 3:
    the clean run again with only the receivers' inputs replaced by what step 2 recorded.
    """
    b, k, n = len(task), len(chunk), model.cfg.n_layers
    corrupted_z = base.corrupted[f"blocks.{layer}.attn.hook_z"]

    def sender(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        x = x.clone()
        for i, h in enumerate(chunk):
            x[i * b : (i + 1) * b, :, h] = corrupted_z[:, :, h]
        return x

    def freeze(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        return base.clean_z[hook.name].repeat(k, 1, 1, 1)

    captured: dict[str, torch.Tensor] = {}

    def capture(x: torch.Tensor, hook: HookPoint) -> None:
        captured[hook.name] = x.detach().clone()
        if len(captured) == len(live):
            raise _Stop

    hooks: list[Hook] = [(f"blocks.{layer}.attn.hook_z", sender)]
    hooks += [(f"blocks.{later}.attn.hook_z", freeze) for later in range(layer + 1, n)]
    hooks += [(name, capture) for name in live]
    replay, answers = base.replay, task.answer_pos.repeat(k)
    logits: torch.Tensor | None = None
    # step 2 ends once the receivers' inputs are cached
    with model.hooks(hooks), contextlib.suppress(_Stop):
        logits = replay.run(layer, replay.resid_pre[layer].repeat(k, 1, 1), answers)
    if live:  # step 3: only the receivers' inputs change
        start = min(_layer(name) for name in live)
        where = None if at is None else at.repeat(k)

        def receive(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
            return _set_heads(x, live[hook.name], captured[hook.name], where)

        with model.hooks([(name, receive) for name in live]):
            logits = replay.run(start, replay.resid_pre[start].repeat(k, 1, 1), answers)
    assert logits is not None
    return logits


# Same shape as src/circuitscope/analysis/_path_patching.py:path_patching on purpose: the reference takes every
# argument the fast path does (but its batching), so a test calls both alike and compares them.
@torch.no_grad()
def naive_path_patching(
    model: HookedModel,
    task: Task,
    receivers: Sequence[tuple[int, int]] | Literal["logits"] = "logits",
    *,
    inputs: Sequence[ReceiverInput] = ("q", "k", "v"),
    metric: MetricName | None = None,
    positions: Int[Tensor, " batch"] | None = None,
) -> PathPatchingResult:
    """The reference: for every sender, two full forward passes of the clean prompts (steps 2 and 3)."""
    metric = metric or task.metric
    targets, label, _ = _receivers(model, receivers, inputs)
    at = _check(model, task, label, positions)
    n, n_heads = model.cfg.n_layers, model.cfg.n_heads
    rows = torch.arange(len(task))
    z_names = "blocks.*.attn.hook_z"
    clean_logits, clean_cache = model.run_with_cache(task.clean_tokens, names=z_names)
    corrupted_logits, corrupted_cache = model.run_with_cache(task.corrupted_tokens, names=z_names)
    clean_logits, corrupted_logits = clean_logits[rows, task.answer_pos], corrupted_logits[rows, task.answer_pos]
    clean_value = float(copies_metric(task, metric, clean_logits, clean_logits).mean(1)[0])
    corrupted_value = float(copies_metric(task, metric, corrupted_logits, clean_logits).mean(1)[0])
    raw = torch.empty(n, n_heads)
    for layer in range(n):
        for head in range(n_heads):

            def step2(x: torch.Tensor, hook: HookPoint, layer: int = layer, head: int = head) -> torch.Tensor:
                out = clean_cache[hook.name].clone()  # every head frozen at its clean value ...
                if hook.name == f"blocks.{layer}.attn.hook_z":
                    out[:, :, head] = corrupted_cache[hook.name][:, :, head]  # ... but the sender
                return out

            _, cache = model.run_with_cache(task.clean_tokens, names=list(targets), fwd_hooks=[(z_names, step2)])

            def step3(x: torch.Tensor, hook: HookPoint, cache: ActivationCache = cache) -> torch.Tensor:
                return _set_heads(x, targets[hook.name], cache[hook.name], at)

            logits = model.run_with_hooks(task.clean_tokens, fwd_hooks=[(name, step3) for name in targets])
            raw[layer, head] = copies_metric(task, metric, logits[rows, task.answer_pos], clean_logits).mean(1)[0]
    return _result(model, task, label, metric, raw, clean_value, corrupted_value)
