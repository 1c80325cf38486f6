"""Run the blocks of a model from a given layer on, reusing how the model called them.

Patching experiments change one activation at layer L and need the model's output. The
blocks before L see the same input in every patched run, so recomputing them is waste.
:class:`BlockReplay` records, on one forward pass, the exact arguments the Hugging Face
model passes to each block (masks, rotary embeddings, position ids: whatever the family
uses) and the residual stream entering each block. :meth:`BlockReplay.run` then feeds an
edited residual stream (batched as K copies of the recorded batch) through blocks L..end,
the final norm and the unembedding, at the requested positions only. Hooks attached to
the model fire as usual inside the replayed blocks.

**Prefix reuse.** An edit at position ``p`` (or later) cannot change any earlier position, at any
layer: their keys and values are the recorded run's. ``run(start, resid, positions, from_pos=p)``
therefore computes only positions ``p..`` of blocks ``start..``: ``resid`` is the residual stream
entering block ``start`` at those positions only (``[rows, pos - p, d_model]``), the earlier
positions' keys and values come from the recorded run through the family's own key/value cache
(transformers' ``DynamicCache``, the mechanism of generation), and the masks, rotary embeddings and
position ids of the shorter call are the ones the model itself makes for it (recorded once per
``p`` by a call in which every block only records its arguments). Hooks inside the replayed blocks
then see positions ``p..`` only (their position axis is ``pos - p`` long); ``positions`` stay
absolute. It needs ``BlockReplay(model, tokens, keep_prefix=True)``, which keeps the recorded
run's key/value cache; :attr:`BlockReplay.reuses_prefix` says whether it is available (attention-only
causal models: a state-space mixer's state is not a key/value cache); ``from_pos=0`` always
works and runs every position, as without prefix reuse. Causal tracing and patching call it alike.

This calls the family's own modules; it re-implements nothing. It is tested against the
full forward pass for every causal family (prefix reuse against the full replay as well).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float, Int

from circuitscope.errors import UnsupportedModelError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["BlockReplay", "unembed_at"]


class _Stop(Exception):  # noqa: N818 (control flow)
    pass


def _swap_cache(value: Any, cache: Any) -> Any:
    """``value`` with every transformers ``Cache`` in it (a block's ``cache`` argument) replaced by ``cache``."""
    from transformers.cache_utils import Cache

    if isinstance(value, Cache):
        return cache
    if isinstance(value, tuple):
        return tuple(_swap_cache(v, cache) for v in value)
    if isinstance(value, dict):
        return {k: _swap_cache(v, cache) for k, v in value.items()}
    return value


def unembed_at(
    model: HookedModel,
    resid: Float[torch.Tensor, "batch pos d_model"],
    positions: Int[torch.Tensor, " batch"],
    columns: Int[torch.Tensor, " column"] | None = None,
) -> Float[torch.Tensor, "batch d_vocab"]:
    """Final norm, unembedding and final softcapping of one position per row (hooks fire as usual).

    ``columns``: only these vocabulary entries, ``[batch, column]`` (a metric that reads a few logits, such
    as a logit difference, needs no full-vocabulary product; the final transform is elementwise).
    """
    norm, unembed = model.wiring.final_norm, model.wiring.unembed
    if norm is None or unembed is None:
        raise UnsupportedModelError(f"the {model.cfg.family} model has no final norm and unembedding")
    rows = torch.arange(resid.shape[0], device=resid.device)
    normed = norm(resid)[rows, positions]  # the norm is called: its hook fires
    if columns is None:
        return model.unembed_resid(normed, normed=True)
    if model.wiring.unembed_head is not None or not isinstance(unembed, torch.nn.Linear):
        return model.unembed_resid(normed, normed=True)[:, columns]
    bias = None if unembed.bias is None else unembed.bias[columns]
    return model.wiring.softcap_logits(torch.nn.functional.linear(normed, unembed.weight[columns], bias))


def _expand(value: Any, batch: int, copies: int) -> Any:
    """Repeat batch-shaped tensors ``copies`` times along dim 0 (copy-major layout)."""
    if copies == 1:
        return value
    if isinstance(value, torch.Tensor):
        return value.repeat(copies, *([1] * (value.ndim - 1))) if value.ndim and value.shape[0] == batch else value
    if isinstance(value, tuple):
        return tuple(_expand(v, batch, copies) for v in value)
    if isinstance(value, list):
        return [_expand(v, batch, copies) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, batch, copies) for k, v in value.items()}
    return value


class BlockReplay:
    """The recorded inputs of every block for one batch, ready to resume the forward pass anywhere."""

    def __init__(
        self, model: HookedModel, tokens: Int[torch.Tensor, "batch pos"], *, keep_prefix: bool = False
    ) -> None:
        """``keep_prefix``: also keep every layer's keys and values of the recorded run, which ``from_pos > 0``
        needs (one key/value cache of the whole batch in memory; a model with state-space mixers keeps none)."""
        if not model.cfg.causal or model.wiring.final_norm is None or model.wiring.unembed is None:
            raise UnsupportedModelError(
                f"resuming a forward pass needs a causal LM with a final norm and an unembedding ({model.cfg.family})"
            )
        self.model = model
        self.tokens = tokens
        self.batch = int(tokens.shape[0])
        self.resid_pre: list[torch.Tensor] = []
        self._kwargs: list[dict[str, Any]] = []
        self._args: list[tuple[Any, ...]] = []
        self.final_resid: torch.Tensor = torch.empty(0)
        """Output of the last block (the final residual stream, before the final norm)."""
        self._outputs: list[Any] = []  # each block's output, its structure for the recording stubs
        self._kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # each layer's keys, values (prefix reuse)
        self._suffix: dict[int, tuple[list[tuple[Any, ...]], list[dict[str, Any]]]] = {}  # by from_pos
        handles = []
        for block in model.wiring.blocks:

            def record(_m: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
                hidden = args[0] if args else kwargs["hidden_states"]
                self.resid_pre.append(hidden.detach())
                self._args.append(tuple(args[1:]))
                self._kwargs.append({k: v for k, v in kwargs.items() if k != "hidden_states"})

            handles.append(block.block.register_forward_pre_hook(record, with_kwargs=True))
            handles.append(block.block.register_forward_hook(lambda _m, _a, out: self._outputs.append(out)))

        def finish(_m: torch.nn.Module, _args: Any, output: Any) -> None:
            self.final_resid = (output[0] if isinstance(output, tuple) else output).detach()
            raise _Stop  # nothing after the last block is needed: no full-vocabulary unembedding

        handles.append(model.wiring.blocks[-1].block.register_forward_hook(finish))
        self._keep = keep_prefix and not model.cfg.mixer_layers
        cache = self._new_cache() if self._keep else None  # the keys and values prefix reuse needs
        try:
            with torch.no_grad():
                if cache is None:
                    model.forward(tokens)
                else:
                    with model._passing(tokens):  # the model's own pass, with its key/value cache kept
                        model.hf_model(input_ids=tokens, cache=cache, use_cache=True)
        except _Stop:
            pass
        finally:
            model.wiring.clear_state()
            for h in handles:
                h.remove()
        if len(self.resid_pre) != model.cfg.n_layers:
            raise UnsupportedModelError("the model did not call each block exactly once; cannot replay it")
        if cache is not None:
            self._kv = [(layer.keys, layer.values) for layer in cache.layers]
            if len(self._kv) != model.cfg.n_layers:
                raise UnsupportedModelError("the model's key/value cache has not one layer per block; cannot replay it")

    @property
    def logits(self) -> Float[torch.Tensor, "batch pos d_vocab"]:
        """The recorded run's logits at every position (costly with a large vocabulary; prefer :meth:`logits_at`)."""
        n, p = self.final_resid.shape[:2]
        flat = self.final_resid.reshape(n * p, 1, -1)
        return unembed_at(self.model, flat, torch.zeros(n * p, dtype=torch.long)).view(n, p, -1)

    def logits_at(self, positions: Int[torch.Tensor, " batch"]) -> Float[torch.Tensor, "batch d_vocab"]:
        """The recorded run's logits at one position per row."""
        return unembed_at(self.model, self.final_resid, positions)

    @property
    def reuses_prefix(self) -> bool:
        """Whether ``from_pos > 0`` is supported: built with ``keep_prefix=True`` and every layer is attention
        (its keys and values can be reused)."""
        return self._keep

    def run(
        self,
        start: int,
        resid: Float[torch.Tensor, "rows pos d_model"],
        positions: Int[torch.Tensor, " rows"],
        *,
        from_pos: int = 0,
        columns: Int[torch.Tensor, " column"] | None = None,
    ) -> Float[torch.Tensor, "rows d_vocab"]:
        """Blocks ``start``.. on ``resid`` (K stacked copies of the recorded batch); logits at ``positions``.

        ``from_pos``: ``resid`` holds positions ``from_pos..`` only and the earlier ones are the recorded
        run's (prefix reuse, see the module docstring); ``positions`` are absolute, each ``>= from_pos``.
        ``columns``: the logits of these vocabulary entries only (see :func:`unembed_at`).
        """
        if from_pos and bool((positions < from_pos).any()):
            raise ValueError(f"positions {positions.tolist()} must each be >= from_pos={from_pos}")
        try:
            return unembed_at(self.model, self._blocks(start, resid, from_pos), positions - from_pos, columns)
        finally:
            self.model.wiring.clear_state()

    def run_resid(
        self, start: int, resid: Float[torch.Tensor, "rows pos d_model"], *, from_pos: int = 0
    ) -> Float[torch.Tensor, "rows pos d_model"]:
        """Blocks ``start``.. on ``resid`` (K stacked copies of the recorded batch): the final residual stream
        (of positions ``from_pos..``, as :meth:`run` takes them)."""
        try:
            return self._blocks(start, resid, from_pos)
        finally:
            self.model.wiring.clear_state()

    def _blocks(self, start: int, resid: torch.Tensor, from_pos: int = 0) -> torch.Tensor:
        if resid.shape[0] % self.batch:
            raise ValueError(f"{resid.shape[0]} rows are not a whole number of copies of the batch of {self.batch}")
        n_pos = int(self.tokens.shape[1])
        if not 0 <= from_pos < n_pos or resid.shape[1] != n_pos - from_pos:
            raise ValueError(
                f"from_pos={from_pos} needs the residual stream of positions {from_pos}..{n_pos - 1} "
                f"({n_pos - from_pos} positions), got {resid.shape[1]}"
            )
        copies = resid.shape[0] // self.batch
        model = self.model
        all_args, all_kwargs, cache = self._args, self._kwargs, None
        if from_pos:
            all_args, all_kwargs = self._suffix_call(from_pos)
            cache = self._prefix_cache(from_pos, copies, start)
        hidden = resid
        for layer in range(start, model.cfg.n_layers):
            args = _swap_cache(_expand(all_args[layer], self.batch, copies), cache)
            kwargs = _swap_cache(_expand(all_kwargs[layer], self.batch, copies), cache)
            out = model.wiring.blocks[layer].block(hidden, *args, **kwargs)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    # ------------------------------------------------------------------ prefix reuse
    def _new_cache(self) -> Any:
        from transformers.cache_utils import DynamicCache

        cache = DynamicCache(config=self.model.hf_model.config)
        for layer in cache.layers:  # a sliding-window layer keeps every position (the prefixes slice them)
            keep_all = getattr(layer, "activate_past_recording", None)
            if callable(keep_all):
                keep_all()
        return cache

    def _keys_values(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every layer's keys and values in the recorded run ([batch kv_head pos d_head] each)."""
        if self._kv is None:
            if self.model.cfg.mixer_layers:
                raise UnsupportedModelError(
                    f"{self.model.cfg.family} has state-space mixer layers, whose state is no key/value cache: "
                    "replay it with from_pos=0"
                )
            raise ValueError(
                "from_pos > 0 reuses the recorded keys and values: build BlockReplay(..., keep_prefix=True)"
            )
        return self._kv

    def _prefix_cache(self, from_pos: int, copies: int, start: int = 0) -> Any:
        """A fresh cache holding the recorded keys and values of positions ``..from_pos - 1`` (layers ``start..``)."""
        from transformers.cache_utils import DynamicCache

        cache = DynamicCache(config=self.model.hf_model.config)  # as generation has it after a prefill
        for index, (k, v) in enumerate(self._keys_values()):
            if index >= start:
                k, v = k[:, :, :from_pos], v[:, :, :from_pos]
                layer: Any = cache.layers[index]  # a key/value layer (a model with mixers has no prefix reuse)
                layer.update(_expand(k, self.batch, copies), _expand(v, self.batch, copies))
        return cache

    def _suffix_call(self, from_pos: int) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]]]:
        """The arguments the model passes each block for positions ``from_pos..`` after a cached prefix."""
        if from_pos not in self._suffix:
            args: list[tuple[Any, ...]] = []
            kwargs: list[dict[str, Any]] = []
            blocks = [b.block for b in self.model.wiring.blocks]

            def stub(layer: int) -> Any:
                def forward(*a: Any, **kw: Any) -> Any:  # records the block's arguments instead of computing
                    hidden = a[0] if a else kw.pop("hidden_states")
                    args.append(tuple(a[1:]))
                    kwargs.append(kw)
                    if layer == len(blocks) - 1:
                        raise _Stop
                    out = self._outputs[layer]
                    return (hidden, *out[1:]) if isinstance(out, tuple) else hidden

                return forward

            for layer, block in enumerate(blocks):
                block.__dict__["forward"] = stub(layer)  # nn.Module looks instance attributes up first
            try:
                self.model.hf_model(
                    input_ids=self.tokens[:, from_pos:], cache=self._prefix_cache(from_pos, 1), use_cache=True
                )
            except _Stop:
                pass
            finally:
                for block in blocks:
                    block.__dict__.pop("forward", None)
                self.model.wiring.clear_state()
            if len(args) != len(blocks):
                raise UnsupportedModelError("the model did not call each block exactly once; cannot replay it")
            self._suffix[from_pos] = (args, kwargs)
        return self._suffix[from_pos]
