"""The one mechanism that reuses a recorded run's keys and values for the positions before an edit.

An edit at token ``t`` of a causal model (a restored activation, a patched residual stream)
leaves every position before ``t`` as the recorded run had it, at every layer: their keys and
values are the recorded run's. :class:`PrefixReplay` wraps a
:class:`~circuitscope.core.replay.BlockReplay` and runs block ``L`` on positions ``t..`` only:
the attention finds the recorded keys and values of positions ``< t`` in front of the new ones,
through the family's own key/value cache argument (``cache.update``, the mechanism of
generation), and the mask, rotary embeddings and position ids recorded for the whole sequence are
cut to rows ``t..``. Each row is a copy of one row of the recorded batch (``source``). Two jobs use
it: causal tracing steps one block per call (:meth:`PrefixReplay.block`) so that rows join at the
layer where they first differ from the recorded run; activation patching runs a whole stack from one
layer (:meth:`PrefixReplay.run_blocks`, behind ``BlockReplay.run(..., from_pos=p)``).

The keys and values are kept during the recorded pass itself: :class:`KeyValueCapture` hands every
block a cache object that keeps what the attention gives it, so they are the keys and values of the
run the hooks attached then saw and edited, and those hooks fire once per recorded position, as in
any forward pass. :class:`PrefixReplay` then checks, for every block, that the attention called the
cache exactly once and that cutting a call at a position reproduces the uncut call (two calls per
block with the model's hooks paused: they are a check of the family's cache handling, not a run a
hook should see).

**What is supported** (the one statement of it): causal decoders whose every block is an attention
block (dense, mixture-of-experts; rotary or learned positions; sliding windows; grouped-query
attention). Not supported, :attr:`PrefixReplay.reason` says why and ``first=0`` (every position)
still works: state-space and hybrid mixers (Mamba, Mamba 2, Bamba: their state is no key/value
cache), attentions that bypass the cache argument, and blocks called with a per-position argument
this module does not know how to cut (an ALiBi bias, for instance).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float, Int

from circuitscope.core.unembed import unembed_at
from circuitscope.errors import UnsupportedModelError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel
    from circuitscope.core.replay import BlockReplay

__all__ = ["KeyValueCapture", "PrefixReplay"]

_CACHE_KEYS = ("cache", "past_key_values", "layer_past")
_CUT_LAST = ("position_ids", "cache_position")  # [..., pos]
_PLAIN = (bool, int, float, str, type(None))


class _Prefix:
    """The cache argument of one block call: keys and values of the earlier positions, put in front."""

    def __init__(self, keys: torch.Tensor | None = None, values: torch.Tensor | None = None) -> None:
        self.keys, self.values = keys, values
        self.calls = 0
        self.seen: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, key: torch.Tensor, value: torch.Tensor, *_args: Any, **_kwargs: Any) -> tuple[Any, Any]:
        self.calls += 1
        if self.keys is not None and self.values is not None:
            key, value = torch.cat([self.keys, key], dim=-2), torch.cat([self.values, value], dim=-2)
        self.seen = (key, value)
        return key, value


def _is_cache(value: Any) -> bool:
    from transformers.cache_utils import Cache

    return isinstance(value, Cache | _Prefix)


class KeyValueCapture:
    """The recorded pass's cache arguments, one per block: each keeps the keys and values its attention used."""

    def __init__(self, model: HookedModel) -> None:
        self.active = not model.cfg.mixer_layers  # a state-space layer keeps no keys and values (PrefixReplay says so)
        self.layers: list[_Prefix | None] = []
        """Per block, in call order: its cache object (None when the block takes no one cache argument)."""

    def block_arguments(
        self, block: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """A block call's arguments with a keeping cache object as its cache argument (by name or by position)."""
        import inspect

        params = list(inspect.signature(block.forward).parameters)
        named = [k for k, v in kwargs.items() if k in _CACHE_KEYS or _is_cache(v)]
        placed = [i for i, (p, a) in enumerate(zip(params, args, strict=False)) if p in _CACHE_KEYS or _is_cache(a)]
        if not self.active or len(named) + len(placed) != 1:
            self.layers.append(None)
            return args, kwargs
        self.layers.append(_Prefix())
        if named:
            return args, {**kwargs, named[0]: self.layers[-1]}
        return (*args[: placed[0]], self.layers[-1], *args[placed[0] + 1 :]), kwargs


@contextmanager
def _hooks_paused(model: HookedModel) -> Iterator[None]:
    """The model's hook functions set aside (and put back however the block exits); the wiring stays as it is."""
    points = [p for p in model.wiring.points.values() if p.active]
    saved = [(p, p.fwd, p.bwd) for p in points]
    try:
        for p in points:
            p.fwd, p.bwd = [], []
        yield
    finally:
        for p, fwd, bwd in saved:
            p.fwd, p.bwd = fwd, bwd


class PrefixReplay:
    """A recorded run's keys and values at every layer, to run single blocks on the positions from ``first`` on."""

    def __init__(self, replay: BlockReplay, captured: KeyValueCapture) -> None:
        """``captured``: the cache objects the recorded pass handed its blocks (``BlockReplay(keep_prefix=True)``)."""
        self.replay = replay
        self.model = replay.model
        self.seq = int(replay.tokens.shape[1])
        self.keys_values: list[tuple[torch.Tensor, torch.Tensor]] = []
        """Each layer's keys and values in the recorded run, as the attention uses them ([batch kv_head pos d])."""
        self._kwargs: list[dict[str, Any]] = []  # each block's recorded arguments, by name
        self.reason: str | None = None
        """Why positions cannot be skipped on this model (None when they can)."""
        try:
            with torch.no_grad():
                self._record(captured)
        except UnsupportedModelError as e:
            self.reason = str(e)
            self.keys_values = []
        finally:
            self.model.wiring.clear_state()

    @property
    def supported(self) -> bool:
        """Whether :meth:`block` accepts ``first > 0``."""
        return self.reason is None

    # ------------------------------------------------------------------ recording
    def _record(self, captured: KeyValueCapture) -> None:
        model = self.model
        if model.cfg.mixer_layers:
            raise UnsupportedModelError(f"{model.cfg.family} has state-space mixer layers: no key/value cache to reuse")
        self._kwargs = [self._named(layer) for layer in range(model.cfg.n_layers)]
        for layer in range(model.cfg.n_layers):
            self.keys_values.append(self._seen(captured.layers[layer] if layer < len(captured.layers) else None, layer))
        first = self.seq // 2
        if first > 0:
            with _hooks_paused(model):
                for layer in range(model.cfg.n_layers):
                    self._check_cut(layer, first)

    def _seen(self, cache: _Prefix | None, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        if cache is None or cache.calls != 1 or cache.seen is None:
            raise UnsupportedModelError(
                f"the {self.model.cfg.family} attention of block {layer} did not go through its key/value cache once"
            )
        return cache.seen[0].detach(), cache.seen[1].detach()

    def _check_cut(self, layer: int, first: int) -> None:
        """A call cut at ``first`` must reproduce the uncut call at the later positions."""
        hidden, own = self.replay.resid_pre[layer], _Prefix()
        out = self._call(layer, hidden, 0, None, own)
        k, v = self._seen(own, layer)
        part = self._call(layer, hidden[:, first:], first, None, _Prefix(k[:, :, :first], v[:, :, :first]))
        if not torch.allclose(part, out[:, first:], rtol=1e-3, atol=1e-4 * float(out.abs().max()) + 1e-6):
            raise UnsupportedModelError(
                f"block {layer} of {self.model.cfg.family} gives other values when its earlier positions come "
                "from the key/value cache"
            )

    def _named(self, layer: int) -> dict[str, Any]:
        """Block ``layer``'s recorded arguments by name (positional ones named from its signature), checked."""
        import inspect

        args, kwargs = self.replay._args[layer], self.replay._kwargs[layer]
        if args:
            params = list(inspect.signature(self.model.wiring.blocks[layer].block.forward).parameters)[1:]
            if len(args) > len(params) or any(p in kwargs for p in params[: len(args)]):
                raise UnsupportedModelError(f"block {layer}'s positional arguments do not match its signature")
            kwargs = {**dict(zip(params, args, strict=False)), **kwargs}
        for key, value in kwargs.items():
            known = key in _CACHE_KEYS or key in _CUT_LAST or key in ("attention_mask", "position_embeddings")
            if not (known or _is_cache(value) or isinstance(value, _PLAIN)):
                raise UnsupportedModelError(f"block {layer} takes {key!r}, which it cannot cut by position")
        return kwargs

    # ------------------------------------------------------------------ running
    def _cut(self, key: str, value: Any, first: int, rows: torch.Tensor | None) -> Any:
        """The recorded argument ``key`` for positions ``first..`` and the given rows of the recorded batch."""
        if key == "attention_mask":
            if value is None:
                if not first:
                    return None
                q = torch.arange(first, self.seq, device=self.replay.tokens.device)[:, None]
                value = (torch.arange(self.seq, device=q.device)[None] <= q)[None, None]
            else:
                value = value[..., first:, :]
        elif key == "position_embeddings":
            return tuple(self._rows(v[..., first:, :], rows) for v in value)
        elif key in _CUT_LAST and isinstance(value, torch.Tensor):
            value = value[..., first:]
        return self._rows(value, rows)

    def _rows(self, value: Any, rows: torch.Tensor | None) -> Any:
        if rows is None or not isinstance(value, torch.Tensor) or not value.ndim or value.shape[0] != self.replay.batch:
            return value
        return value.index_select(0, rows)

    def _deep_rows(self, value: Any, rows: torch.Tensor) -> Any:
        if isinstance(value, tuple | list):
            return type(value)(self._deep_rows(v, rows) for v in value)
        if isinstance(value, dict):
            return {k: self._deep_rows(v, rows) for k, v in value.items()}
        return self._rows(value, rows)

    def _call(
        self, layer: int, hidden: torch.Tensor, first: int, rows: torch.Tensor | None, cache: _Prefix | None = None
    ) -> torch.Tensor:
        block = self.model.wiring.blocks[layer].block
        if not self.supported:  # every position, with the recorded arguments as they are (as BlockReplay runs)
            assert rows is not None and not first
            args = self._deep_rows(self.replay._args[layer], rows)
            out = block(hidden, *args, **self._deep_rows(self.replay._kwargs[layer], rows))
            return out[0] if isinstance(out, tuple) else out
        if cache is None:
            cache = _Prefix()
            if first:
                k, v = self.keys_values[layer]
                k, v = k[:, :, :first], v[:, :, :first]
                cache = _Prefix(*(k, v) if rows is None else (k.index_select(0, rows), v.index_select(0, rows)))
        kwargs = {
            k: cache if k in _CACHE_KEYS or _is_cache(v) else self._cut(k, v, first, rows)
            for k, v in self._kwargs[layer].items()
        }
        out = block(hidden, **kwargs)
        return out[0] if isinstance(out, tuple) else out

    def block(
        self,
        layer: int,
        hidden: Float[torch.Tensor, "rows pos d_model"],
        first: int,
        source: Int[torch.Tensor, " rows"],
    ) -> Float[torch.Tensor, "rows pos d_model"]:
        """Block ``layer`` on positions ``first..`` (``hidden``), row ``i`` a copy of recorded row ``source[i]``.

        Hooks attached to the model fire as usual; their position axis is ``seq - first`` long.
        """
        return self.run_blocks(range(layer, layer + 1), hidden, first, source)

    def run_blocks(self, layers: range, hidden: torch.Tensor, first: int, source: torch.Tensor) -> torch.Tensor:
        """Blocks ``layers`` (consecutive) on positions ``first..`` (``hidden``, ``[rows, pos - first, d_model]``),
        row ``i`` a copy of recorded row ``source[i]``: the output of the last, as :meth:`block` runs one."""
        if first and not self.supported:
            raise UnsupportedModelError(f"cannot skip positions on this model ({self.reason}); use first=0")
        if not 0 <= first < self.seq or hidden.shape[1] != self.seq - first:
            raise ValueError(f"first={first} needs positions {first}..{self.seq - 1}, got {hidden.shape[1]} positions")
        try:
            for layer in layers:
                hidden = self._call(layer, hidden, first, source)
            return hidden
        finally:
            self.model.wiring.clear_state()

    def logits_last(self, hidden: Float[torch.Tensor, "rows pos d_model"]) -> Float[torch.Tensor, "rows d_vocab"]:
        """Final norm, unembedding and softcapping of each row's last position (hooks fire as usual)."""
        last = hidden[:, -1:]
        return unembed_at(self.model, last, torch.zeros(last.shape[0], dtype=torch.long, device=last.device))
