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
entering block ``start`` at those positions only (``[rows, pos - p, d_model]``) and ``positions`` stay
absolute. The mechanism is :class:`~circuitscope.core.prefix_kv.PrefixReplay` (causal tracing uses
it too; its docstring says which models it supports, :attr:`BlockReplay.prefix_reason` why not);
``BlockReplay(model, tokens, keep_prefix=True)`` builds it, :attr:`BlockReplay.reuses_prefix` says
whether it applies. Hooks inside the replayed blocks then see positions ``p..`` only (their position
axis is ``pos - p`` long); ``from_pos=0`` always works and runs every position.

This calls the family's own modules; it re-implements nothing. It is tested against the
full forward pass for every causal family (prefix reuse against the full replay as well).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float, Int

from circuitscope.core.prefix_kv import KeyValueCapture, PrefixReplay
from circuitscope.core.unembed import unembed_at
from circuitscope.errors import UnsupportedModelError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["BlockReplay", "unembed_at"]


class _Stop(Exception):  # noqa: N818 (control flow)
    pass


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
        """``keep_prefix``: also keep every layer's keys and values of this recorded pass (the hooks attached now
        see and edit it once, as any forward pass; :class:`PrefixReplay`), which ``from_pos > 0`` needs (one
        key/value cache of the whole batch in memory)."""
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
        handles = []
        captured = KeyValueCapture(model) if keep_prefix else None
        for block in model.wiring.blocks:

            def record(_m: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                hidden = args[0] if args else kwargs["hidden_states"]
                self.resid_pre.append(hidden.detach())
                self._args.append(tuple(args[1:]))
                self._kwargs.append({k: v for k, v in kwargs.items() if k != "hidden_states"})
                # keep_prefix: the attention hands its keys and values to a cache object that keeps them
                return None if captured is None else captured.block_arguments(_m, args, kwargs)

            handles.append(block.block.register_forward_pre_hook(record, with_kwargs=True))

        def finish(_m: torch.nn.Module, _args: Any, output: Any) -> None:
            self.final_resid = (output[0] if isinstance(output, tuple) else output).detach()
            raise _Stop  # nothing after the last block is needed: no full-vocabulary unembedding

        handles.append(model.wiring.blocks[-1].block.register_forward_hook(finish))
        try:
            with torch.no_grad():
                model.forward(tokens)
        except _Stop:
            pass
        finally:
            model.wiring.clear_state()
            for h in handles:
                h.remove()
        if len(self.resid_pre) != model.cfg.n_layers:
            raise UnsupportedModelError("the model did not call each block exactly once; cannot replay it")
        self.prefix: PrefixReplay | None = None if captured is None else PrefixReplay(self, captured)
        """The recorded keys and values that ``from_pos > 0`` reuses (None without ``keep_prefix``)."""

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
        """Whether ``from_pos > 0`` is supported: built with ``keep_prefix=True`` on a model whose keys and values
        :class:`PrefixReplay` can reuse."""
        return self.prefix is not None and self.prefix.supported

    @property
    def prefix_reason(self) -> str | None:
        """Why ``from_pos > 0`` is not supported (None when it is)."""
        if self.prefix is None:
            return "from_pos > 0 reuses the recorded keys and values: build BlockReplay(..., keep_prefix=True)"
        return self.prefix.reason

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
        if from_pos:
            if self.prefix is None:
                raise ValueError(str(self.prefix_reason))
            if not self.prefix.supported:
                raise UnsupportedModelError(
                    f"cannot reuse the earlier positions' keys and values ({self.prefix.reason}); "
                    "replay it with from_pos=0"
                )
            source = torch.arange(self.batch, device=resid.device).repeat(copies)  # copy-major rows
            return self.prefix.run_blocks(range(start, self.model.cfg.n_layers), resid, from_pos, source)
        hidden = resid
        for layer in range(start, self.model.cfg.n_layers):
            args = _expand(self._args[layer], self.batch, copies)
            kwargs = _expand(self._kwargs[layer], self.batch, copies)
            out = self.model.wiring.blocks[layer].block(hidden, *args, **kwargs)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden
