"""The engine of causal tracing: many restorations of clean activations into the corrupted run, batched.

A restoration at layer L and tokens ``t..`` (a :class:`_Restore`) changes nothing below L and
nothing before ``t``: there the restored run is the corrupted run, which
:class:`~circuitscope.core.replay.BlockReplay` recorded once. So :func:`_restored_probs`

- shortcuts restorations that cannot reach the answer (the last block's output at an earlier
  token): their probability is the corrupted run's;
- orders the restorations by their first token, then by the first layer they change, and cuts them
  into passes of up to ``batch_size`` rows (a row being one sample of one restoration); a pass whose
  first token is ``t`` computes positions ``t..`` only, the earlier ones' keys and values the
  recorded run's (:class:`~circuitscope.core.prefix_kv.PrefixReplay`; on a family where that does
  not apply, every position, ``t = 0``). A pass spans a few first tokens (a whole layer range of one
  token fills most of it), so the passes stay few and large, which costs as much as the positions
  saved on a busy 2-core CPU, where every call of a small matrix product waits for its threads;
- runs each pass one block at a time, every restoration joining at the first layer it changes (its
  rows start from the recorded residual stream there), so no row runs a block below that layer;
- unembeds the last position only.

The result equals one full hooked forward pass per restoration (tests/analysis/test_tracing.py)
up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float

from circuitscope.analysis.tracing_results import TraceBaseline, TraceConfig
from circuitscope.core.hook_points import HookPoint
from circuitscope.core.hooked_model import HookedModel
from circuitscope.core.prefix_kv import PrefixReplay
from circuitscope.core.replay import BlockReplay
from circuitscope.engine.batching import batched
from circuitscope.progress import OnProgress, track

_RESID_POST = "hook_resid_post"


@dataclass(frozen=True)
class _Restore:
    """Clean activation ``blocks.{layer}.{hook}`` at ``positions`` (only ``index`` of its last axes if given)."""

    layer: int
    hook: str
    positions: tuple[int, ...]
    index: int | None = None

    @property
    def entry(self) -> int:
        """The first block whose input this restoration changes."""
        return self.layer + 1 if self.hook == _RESID_POST else self.layer


@dataclass
class _Setup:
    model: HookedModel
    tokens: torch.Tensor
    span: tuple[int, int]
    cfg: TraceConfig
    baseline: TraceBaseline
    replay: BlockReplay
    """The corrupted run, recorded with its keys and values (``keep_prefix=True``)."""
    clean: dict[str, torch.Tensor]
    corrupted: dict[str, torch.Tensor]

    @property
    def prefix(self) -> PrefixReplay:
        """The corrupted run's keys and values, to run blocks on the positions from a restored token on."""
        assert self.replay.prefix is not None  # recorded with keep_prefix=True
        return self.replay.prefix


def _entry(group: list[_Restore], n_layers: int) -> int:
    return min((r.entry for r in group), default=n_layers)


def _reaches_answer(group: list[_Restore], n_layers: int, last: int) -> bool:
    """False when the restoration cannot change the answer: nothing, or the final stream at earlier tokens."""
    return any(r.entry < n_layers or last in r.positions for r in group)


class _Edits:
    """The clean values one hook point writes into the rows of its restorations (one indexed assignment)."""

    def __init__(self, todo: list[tuple[int, _Restore]], clean: torch.Tensor, samples: int, first: int) -> None:
        rows: list[int] = []
        pos: list[int] = []
        index: list[int] = []
        for offset, r in todo:
            for p in r.positions:
                rows += range(offset, offset + samples)
                pos += [p] * samples
                index += [r.index if r.index is not None else 0] * samples
        device = clean.device
        self.rows = torch.tensor(rows, device=device)
        self.pos = torch.tensor(pos, device=device) - first
        self.indexed = todo[0][1].index is not None
        self.index = torch.tensor(index, device=device)
        at = torch.tensor(pos, device=device)
        self.values = clean[0, at, self.index] if self.indexed else clean[0, at]

    def apply(self, x: torch.Tensor) -> None:
        if self.indexed:
            x[self.rows, self.pos, self.index] = self.values
        else:
            x[self.rows, self.pos] = self.values


def _restore_hook(edits: _Edits) -> Callable[[torch.Tensor, HookPoint], torch.Tensor]:
    def restore(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        x = x.clone()
        edits.apply(x)
        return x

    return restore


@torch.no_grad()
def _run_bucket(setup: _Setup, groups: list[list[_Restore]], first: int) -> Float[torch.Tensor, " group"]:
    """Mean target probability of each group, its rows computed at positions ``first..`` from its entry layer on."""
    model, replay, prefix = setup.model, setup.replay, setup.prefix
    n_layers, samples = model.cfg.n_layers, replay.batch
    joins = [_entry(g, n_layers) for g in groups]
    order = sorted(range(len(groups)), key=lambda k: joins[k])  # rows are laid out in the order they join
    offset = {k: j * samples for j, k in enumerate(order)}
    at_join: dict[int, list[_Restore]] = {}
    by_name: dict[str, list[tuple[int, _Restore]]] = {}
    for k, group in enumerate(groups):
        for r in group:
            if r.hook == _RESID_POST and r.entry == joins[k]:  # written into the stream the rows start from
                at_join.setdefault(k, []).append(r)
            else:
                by_name.setdefault(f"blocks.{r.layer}.{r.hook}", []).append((offset[k], r))
    hooks = [(n, _restore_hook(_Edits(todo, setup.clean[n], samples, first))) for n, todo in by_name.items()]
    hidden: torch.Tensor | None = None
    with model.hooks(hooks):
        for layer in range(joins[order[0]], n_layers + 1):
            joining = [k for k in order if joins[k] == layer]
            if joining:
                stream = replay.resid_pre[layer] if layer < n_layers else replay.final_resid
                new = stream[:, first:].repeat(len(joining), 1, 1)
                edits = [(j * samples, r) for j, k in enumerate(joining) for r in at_join.get(k, [])]
                if edits:
                    _Edits(edits, setup.clean[f"blocks.{layer - 1}.{_RESID_POST}"], samples, first).apply(new)
                hidden = new if hidden is None else torch.cat([hidden, new])
            if layer < n_layers:
                assert hidden is not None
                source = torch.arange(samples, device=hidden.device).repeat(hidden.shape[0] // samples)
                hidden = prefix.block(layer, hidden, first, source)
    assert hidden is not None
    probs = prefix.logits_last(hidden).float().softmax(-1)[:, setup.baseline.target_id]
    means = probs.view(len(groups), samples).mean(1).cpu()
    out = torch.empty(len(groups))
    out[torch.tensor(order)] = means
    return out


@torch.no_grad()
def _restored_probs(
    setup: _Setup, groups: list[list[_Restore]], description: str, on_progress: OnProgress | None = None
) -> Float[torch.Tensor, " group"]:
    """Mean target probability over samples with each group's clean activations restored together."""
    n_layers, samples = setup.model.cfg.n_layers, setup.replay.batch
    last = setup.tokens.shape[0] - 1
    out = torch.full((len(groups),), setup.baseline.corrupted_prob)
    todo = [i for i, g in enumerate(groups) if _reaches_answer(g, n_layers, last)]

    def first(i: int) -> int:
        return min(p for r in groups[i] for p in r.positions) if setup.prefix.supported else 0

    order = sorted(todo, key=lambda i: (first(i), _entry(groups[i], n_layers)))
    for chunk in track(batched(order, max(1, setup.cfg.batch_size // samples)), description, on_progress):
        t = min(first(i) for i in chunk)  # a pass mixes at most a few first tokens: the later ones' rows compute a few
        out[torch.tensor(chunk)] = _run_bucket(setup, [groups[i] for i in chunk], t)  # positions more, as corrupted
    return out
