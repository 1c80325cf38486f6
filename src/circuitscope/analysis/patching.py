"""Activation patching: put one clean activation into the corrupted run and measure the metric.

For each component (a layer and position of the residual stream, an attention or MLP
output, a head's output, a head's q/k/v or pattern), the clean run's activation replaces
the corrupted run's, and the task metric is recorded, normalised to 0 at the corrupted
run and 1 at the clean run (a "denoising" patch, as TransformerLens's patching helpers do).

:func:`activation_patching` batches many patches into one forward pass (K copies of the
prompts, each patching a different component), caches the clean activations once, and
resumes the forward pass at the patched layer from the cached corrupted residual stream
(blocks before it cannot change), computing logits only at the answer positions.
:func:`naive_activation_patching` is the one-forward-per-patch reference it is tested against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from jaxtyping import Float, Int

from circuitscope.core.capabilities import require_attention
from circuitscope.core.fingerprint import model_fingerprint
from circuitscope.core.hook_points import HookPoint
from circuitscope.core.hooked_model import HookedModel
from circuitscope.core.replay import BlockReplay, unembed_at
from circuitscope.engine.batching import batched
from circuitscope.engine.distributed import all_gather, argument_digest, check_same_arguments, shard
from circuitscope.engine.grid import AxisName, MetricGrid, component_labels
from circuitscope.errors import ShapeError, UnsupportedAnalysisError
from circuitscope.progress import OnProgress, track
from circuitscope.tasks.metrics import MetricName, check_normalisable, evaluate_metric, normalise
from circuitscope.tasks.task import Task

__all__ = [
    "PATCH_TARGETS", "PatchTarget", "PatchingResult", "activation_patching", "copies_metric",
    "naive_activation_patching",
]  # fmt: skip

PatchTarget = Literal[
    "resid_pre", "attn_out", "mixer_out", "mlp_out", "head_out", "head_out_by_pos", "q", "k", "v", "pattern"
]
# A Literal with its get_args tuple, the house rule for every set of string options: alike on purpose.
PATCH_TARGETS: tuple[str, ...] = get_args(PatchTarget)

_RESIDUAL_TARGETS = ("resid_pre", "attn_out", "mixer_out", "mlp_out")
"""Targets patched per position, each a [batch pos d_model] stream; the rest are per head."""

PATCH_HOOKS: dict[PatchTarget, str] = {
    "resid_pre": "hook_resid_pre",
    "attn_out": "hook_attn_out",
    "mixer_out": "hook_mixer_out",  # a state-space mixer layer's output (Mamba), in the attention slot
    "mlp_out": "hook_mlp_out",
    "head_out": "attn.hook_z",
    "head_out_by_pos": "attn.hook_z",
    "q": "attn.hook_q",
    "k": "attn.hook_k",
    "v": "attn.hook_v",
    "pattern": "attn.hook_pattern",
}


@dataclass(frozen=True, kw_only=True)
class PatchingResult(MetricGrid):
    """Normalised metric for every patched component, on axes named by ``axes``.

    ``scores``: 0 = corrupted run, 1 = clean run. Shape ``[layer, pos]`` for
    ``resid_pre``/``attn_out``/``mixer_out``/``mlp_out``, ``[layer, head]`` for ``head_out``/``q``/``v``/``pattern``
    (``k``/``v`` over key/value heads), ``[layer, head, pos]`` for ``head_out_by_pos``; ``raw`` is the
    metric itself (mean over prompts); ``labels["pos"]`` the tokens of the first clean prompt.
    """

    target: PatchTarget
    """What was patched (one of ``PATCH_TARGETS``)."""
    tokens: Int[torch.Tensor, "batch pos"]
    """The clean tokens used, BOS included."""


def _items(
    model: HookedModel, target: PatchTarget, seq: int
) -> tuple[tuple[AxisName, ...], list[tuple[int, ...]], int]:
    """Axes and the per-layer component indices of a target."""
    c = model.cfg
    if target in _RESIDUAL_TARGETS:
        return ("layer", "pos"), [(p,) for p in range(seq)], seq
    if target == "head_out_by_pos":
        return ("layer", "head", "pos"), [(h, p) for h in range(c.n_heads) for p in range(seq)], c.n_heads * seq
    n = c.n_kv_heads if target in ("k", "v") else c.n_heads
    return ("layer", "kv_head" if target in ("k", "v") else "head"), [(h,) for h in range(n)], n


def _patch_rows(
    target: PatchTarget, x: torch.Tensor, rows: slice, clean: torch.Tensor, item: tuple[int, ...], from_pos: int = 0
) -> None:
    """In place: rows ``rows`` of ``x`` take the clean value of component ``item`` (``x`` holds positions
    ``from_pos..``; ``clean`` every position)."""
    if target in _RESIDUAL_TARGETS:
        (p,) = item
        x[rows, p - from_pos] = clean[:, p]
    elif target == "head_out_by_pos":
        h, p = item
        x[rows, p - from_pos, h] = clean[:, p, h]
    elif target == "pattern":  # always every position (see _from_pos)
        (h,) = item
        x[rows, h] = clean[:, h]
    else:  # head_out (z), q, k, v: [batch pos head d_head]
        (h,) = item
        x[rows, :, h] = clean[:, from_pos:, h]


def copies_metric(
    task: Task, metric: MetricName, logits: Float[torch.Tensor, "rows d_vocab"], clean_logits: torch.Tensor
) -> Float[torch.Tensor, "copies batch"]:
    """The metric of every prompt in each stacked copy of the task's prompts (``logits``: copies x batch rows,
    copy-major, at the answer positions; ``clean_logits``: the clean run's, one row per prompt)."""
    copies = logits.shape[0] // len(task)
    values = evaluate_metric(
        metric, logits, task.correct.repeat(copies), task.incorrect.repeat(copies), clean_logits.repeat(copies, 1)
    )
    return values.view(copies, len(task))


def _check(model: HookedModel, task: Task, target: PatchTarget, layers: list[int] | None) -> list[int]:
    if target not in PATCH_TARGETS:
        raise ShapeError(f"unknown patching target {target!r}; choose one of {PATCH_TARGETS}")
    cfg = model.cfg
    per_head = target not in _RESIDUAL_TARGETS  # a head's output, q/k/v or pattern
    has = [layer for layer in range(cfg.n_layers) if f"blocks.{layer}.{PATCH_HOOKS[target]}" in model.hook_names]
    if layers is None:  # by default, every layer that has the patched sublayer (a hybrid's mixer or attention)
        layers = has
        if not layers:
            if per_head:
                require_attention(cfg, f"patching {target} (per head)")  # says what to use instead
            raise UnsupportedAnalysisError(
                f"{cfg.family} has no blocks.L.{PATCH_HOOKS[target]} in any layer: patching {target} needs it "
                f"(see model.hook_names for what its blocks have)"
            )
    for layer in layers:
        model.check_layer_head(layer)
    if per_head:
        require_attention(cfg, f"patching {target} (per head)", layers)
    lacking = [layer for layer in layers if layer % cfg.n_layers not in has]
    if lacking:
        raise UnsupportedAnalysisError(
            f"{cfg.family} layers {lacking} have no {PATCH_HOOKS[target]}: patching {target} needs it "
            "(a hybrid's mixer layers write hook_mixer_out, its attention layers hook_attn_out)"
        )
    chosen = layers
    if task.clean_tokens.shape[1] > model.cfg.n_ctx:
        raise ShapeError("the task's prompts are longer than the model's context")
    return [layer % model.cfg.n_layers for layer in chosen]


def _baselines(
    model: HookedModel, task: Task, target: PatchTarget, layers: list[int]
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    rows = torch.arange(len(task))
    last = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    names = [f"blocks.{layer}.{PATCH_HOOKS[target]}" for layer in layers] + [last]
    with torch.no_grad():  # stops after the last block: logits only at the answer positions
        cache = model.cache_activations(task.clean_tokens, names)
    clean_logits = unembed_at(model, cache[last], task.answer_pos)
    return dict(cache), clean_logits, rows


def _run_values(
    task: Task, metric: MetricName, clean_logits: torch.Tensor, corrupted_logits: torch.Tensor
) -> tuple[float, float]:
    """Mean metric of the clean and of the corrupted run."""
    clean_value = float(copies_metric(task, metric, clean_logits, clean_logits).mean(1)[0])
    return clean_value, float(copies_metric(task, metric, corrupted_logits, clean_logits).mean(1)[0])


# Same shape as src/circuitscope/analysis/experts.py:expert_ablation_scan on purpose: both are public sweeps over
# (model, task, one choice) whose keyword options (metric, progress) are spelled out, one per line.
@torch.no_grad()
def activation_patching(
    model: HookedModel,
    task: Task,
    target: PatchTarget = "head_out",
    *,
    metric: MetricName | None = None,
    layers: list[int] | None = None,
    batch_size: int = 256,
    on_progress: OnProgress | None = None,
) -> PatchingResult:
    """Patch every component of ``target`` from the clean into the corrupted run, batched.

    ``batch_size`` bounds the rows of one forward pass, a row being one corrupted prompt with one patch.
    ``on_progress(stage, done, total)`` is told each forward pass done (default: a progress bar on stderr).

    A patched run resumes at the patched layer and, where the model allows it, computes only the positions
    the patch can change (from the patched position, or from the first token where the clean and corrupted
    prompts differ), the earlier positions' keys and values reused from the corrupted run
    (:meth:`BlockReplay.run`'s ``from_pos``); a residual-stream patch that changes nothing is not run.
    Under ``torchrun`` (a process group joined with :func:`circuitscope.engine.distributed.process_group`)
    the forward passes are dealt to the ranks round-robin, which must be given the same arguments (refused before
    any work otherwise), and every rank returns the whole result, equal to the one-process result.
    """
    chosen = _check(model, task, target, layers)
    metric = metric or task.metric
    check_same_arguments(_arguments(model, task, target, metric, chosen, batch_size))
    clean_cache, clean_logits, _ = _baselines(model, task, target, chosen)
    replay = BlockReplay(model, task.corrupted_tokens, keep_prefix=True)
    corrupted_logits = replay.logits_at(task.answer_pos)
    clean_value, corrupted_value = _run_values(task, metric, clean_logits, corrupted_logits)
    check_normalisable(clean_value, corrupted_value, metric)  # refuse before the sweep, not after it
    axes, items, n_items = _items(model, target, task.seq_len)
    raw = torch.full((len(chosen), n_items), corrupted_value)  # a patch that changes nothing scores the corrupted run
    chunks = _chunks(task, target, chosen, items, clean_cache, replay, max(1, batch_size // len(task)))
    # round-robin: a pass resuming at a later layer (or from a later position) costs less; the gathered passes
    # fill ``raw`` by their own indices, so the order they come back in does not matter
    mine = [chunks[i] for i in shard(len(chunks), strategy="round_robin")]
    done: list[tuple[int, list[int], torch.Tensor]] = []
    for chunk in track(mine, f"patching {target}", on_progress):
        done.append(
            (chunk.li, chunk.index, _run_chunk(model, task, target, metric, chunk, clean_cache, replay, clean_logits))
        )
    for li, index, values in (part for parts in all_gather(done) for part in parts):
        raw[li, index] = values
    return _result(model, task, target, metric, axes, raw, clean_value, corrupted_value)


@dataclass(frozen=True)
class _Chunk:
    """Patches run in one forward pass: one layer, one first computed position."""

    li: int
    """Index of the layer in the chosen layers."""
    layer: int
    index: list[int]
    """Indices of the patched components in the layer's items."""
    items: list[tuple[int, ...]]
    from_pos: int
    """The first position computed (the earlier ones cannot change)."""


def _first_difference(task: Task) -> int:
    """The first position where some clean prompt differs from its corrupted prompt (the length if none)."""
    differs = (task.clean_tokens != task.corrupted_tokens).any(0).nonzero()
    return int(differs[0]) if len(differs) else task.seq_len


def _from_pos(target: PatchTarget, item: tuple[int, ...], first: int) -> int:
    """The first position a patch of ``item`` can change."""
    if target == "pattern":  # the pattern's query and key axes: every position runs
        return 0
    if target in _RESIDUAL_TARGETS or target == "head_out_by_pos":
        return item[-1]  # one position patched
    return first  # a head at every position: from the first position where the prompts differ


def _chunks(
    task: Task,
    target: PatchTarget,
    chosen: list[int],
    items: list[tuple[int, ...]],
    clean_cache: dict[str, torch.Tensor],
    replay: BlockReplay,
    copies: int,
) -> list[_Chunk]:
    """Every forward pass of the sweep: patches grouped by layer and first computed position, ``copies`` at most."""
    first, last = _first_difference(task), int(task.answer_pos.min())
    out: list[_Chunk] = []
    for li, layer in enumerate(chosen):
        groups: dict[int, list[int]] = {}
        for j, item in enumerate(items):
            if target == "resid_pre" and torch.equal(
                clean_cache[f"blocks.{layer}.hook_resid_pre"][:, item[0]], replay.resid_pre[layer][:, item[0]]
            ):
                continue  # the clean stream is the corrupted one there: the patched run is the corrupted run
            # from the first position the patch can change, but no later than the first answer (its logits are read)
            start = min(_from_pos(target, item, first), last) if replay.reuses_prefix else 0
            groups.setdefault(start, []).append(j)
        for start, index in sorted(groups.items()):
            for part in batched(index, copies):
                out.append(_Chunk(li, layer, list(part), [items[j] for j in part], start))
    return out


def _run_chunk(
    model: HookedModel,
    task: Task,
    target: PatchTarget,
    metric: MetricName,
    chunk: _Chunk,
    clean_cache: dict[str, torch.Tensor],
    replay: BlockReplay,
    clean_logits: torch.Tensor,
) -> torch.Tensor:
    """The mean metric of each patch of one chunk, [patch]."""
    k, f, n = len(chunk.items), chunk.from_pos, len(task)
    clean = clean_cache[f"blocks.{chunk.layer}.{PATCH_HOOKS[target]}"]
    resid = replay.resid_pre[chunk.layer][:, f:].repeat(k, 1, 1)
    hooks: list[tuple[str, Callable[..., torch.Tensor]]] = []
    if target == "resid_pre":
        for i, item in enumerate(chunk.items):
            _patch_rows(target, resid, slice(i * n, (i + 1) * n), clean, item, f)
    else:

        def patch(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
            x = x.clone()
            for i, item in enumerate(chunk.items):
                _patch_rows(target, x, slice(i * n, (i + 1) * n), clean, item, f)
            return x

        hooks.append((f"blocks.{chunk.layer}.{PATCH_HOOKS[target]}", patch))
    positions = task.answer_pos.repeat(k)
    if metric == "logit_diff":  # two logits per prompt: no full-vocabulary unembedding
        columns, index = torch.cat([task.correct, task.incorrect]).unique(return_inverse=True)
        with model.hooks(hooks):
            logits = replay.run(chunk.layer, resid, positions, from_pos=f, columns=columns)
        rows = torch.arange(len(positions))
        diff = logits[rows, index[:n].repeat(k)] - logits[rows, index[n:].repeat(k)]
        return diff.float().view(k, n).mean(1)
    with model.hooks(hooks):
        logits = replay.run(chunk.layer, resid, positions, from_pos=f)
    return copies_metric(task, metric, logits, clean_logits).mean(1)


def _arguments(
    model: HookedModel, task: Task, target: PatchTarget, metric: str, chosen: list[int], batch_size: int
) -> dict[str, object]:
    """What every rank of a distributed sweep must agree on (the prompts by a hash of their tokens)."""
    return {
        "model": model_fingerprint(model),
        "task": argument_digest(
            task.clean_tokens, task.corrupted_tokens, task.answer_pos, task.correct, task.incorrect
        ),
        "target": target,
        "metric": metric,
        "layers": chosen,
        "batch_size": batch_size,
    }


def _result(
    model: HookedModel,
    task: Task,
    target: PatchTarget,
    metric: str,
    axes: tuple[AxisName, ...],
    raw: torch.Tensor,
    clean_value: float,
    corrupted_value: float,
) -> PatchingResult:
    if target == "head_out_by_pos":
        raw = raw.view(raw.shape[0], model.cfg.n_heads, task.seq_len)
    scores = normalise(raw, clean_value, corrupted_value)  # 1 = clean, 0 = corrupted, whichever way the metric points
    return PatchingResult(
        target=target,
        scores=scores,
        raw=raw,
        axes=axes,
        labels=component_labels(model, axes, prompt=task.clean_tokens[0]),
        metric=metric,
        clean_value=clean_value,
        corrupted_value=corrupted_value,
        tokens=task.clean_tokens,
    )


# Same shape as src/circuitscope/analysis/patching.py:activation_patching on purpose: the reference takes every
# argument the fast path does (the tests call both alike), without the batching.
@torch.no_grad()
def naive_activation_patching(
    model: HookedModel,
    task: Task,
    target: PatchTarget = "head_out",
    *,
    metric: MetricName | None = None,
    layers: list[int] | None = None,
) -> PatchingResult:
    """The reference: one full forward pass of the corrupted prompts per patched component.

    Its signature is :func:`activation_patching`'s on purpose (the tests call both alike), without the batching.
    """
    chosen = _check(model, task, target, layers)
    metric = metric or task.metric
    clean_cache, clean_logits, rows = _baselines(model, task, target, chosen)
    corrupted_logits = model(task.corrupted_tokens)[rows, task.answer_pos]
    clean_value, corrupted_value = _run_values(task, metric, clean_logits, corrupted_logits)
    axes, items, n_items = _items(model, target, task.seq_len)
    raw = torch.empty(len(chosen), n_items)
    everything = slice(None)
    for li, layer in enumerate(chosen):
        name = f"blocks.{layer}.{PATCH_HOOKS[target]}"
        clean = clean_cache[name]
        for j, item in enumerate(items):

            def patch(
                x: torch.Tensor, hook: HookPoint, item: tuple[int, ...] = item, clean: torch.Tensor = clean
            ) -> torch.Tensor:
                x = x.clone()
                _patch_rows(target, x, everything, clean, item)
                return x

            logits = model.run_with_hooks(task.corrupted_tokens, fwd_hooks=[(name, patch)])[rows, task.answer_pos]
            raw[li, j] = copies_metric(task, metric, logits, clean_logits).mean(1)[0]
    return _result(model, task, target, metric, axes, raw, clean_value, corrupted_value)
