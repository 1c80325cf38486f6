"""Run the blocks of a model from a given layer on, reusing how the model called them.

Patching experiments change one activation at layer L and need the model's output. The
blocks before L see the same input in every patched run, so recomputing them is waste.
:class:`BlockReplay` records, on one forward pass, the exact arguments the Hugging Face
model passes to each block (masks, rotary embeddings, position ids: whatever the family
uses) and the residual stream entering each block. :meth:`BlockReplay.run` then feeds an
edited residual stream (batched as K copies of the recorded batch) through blocks L..end,
the final norm and the unembedding, at the requested positions only. Hooks attached to
the model fire as usual inside the replayed blocks.

This calls the family's own modules; it re-implements nothing. It is tested against the
full forward pass for every causal family.
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


def unembed_at(
    model: HookedModel, resid: Float[torch.Tensor, "batch pos d_model"], positions: Int[torch.Tensor, " batch"]
) -> Float[torch.Tensor, "batch d_vocab"]:
    """Final norm, unembedding and final softcapping of one position per row (hooks fire as usual)."""
    norm = model.wiring.final_norm
    if norm is None or model.wiring.unembed is None:
        raise UnsupportedModelError(f"the {model.cfg.family} model has no final norm and unembedding")
    rows = torch.arange(resid.shape[0], device=resid.device)
    return model.unembed_resid(norm(resid)[rows, positions], normed=True)  # the norm is called: its hook fires


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

    def __init__(self, model: HookedModel, tokens: Int[torch.Tensor, "batch pos"]) -> None:
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
        for block in model.wiring.blocks:

            def record(_m: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
                hidden = args[0] if args else kwargs["hidden_states"]
                self.resid_pre.append(hidden.detach())
                self._args.append(tuple(args[1:]))
                self._kwargs.append({k: v for k, v in kwargs.items() if k != "hidden_states"})

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

    @property
    def logits(self) -> Float[torch.Tensor, "batch pos d_vocab"]:
        """The recorded run's logits at every position (costly with a large vocabulary; prefer :meth:`logits_at`)."""
        n, p = self.final_resid.shape[:2]
        flat = self.final_resid.reshape(n * p, 1, -1)
        return unembed_at(self.model, flat, torch.zeros(n * p, dtype=torch.long)).view(n, p, -1)

    def logits_at(self, positions: Int[torch.Tensor, " batch"]) -> Float[torch.Tensor, "batch d_vocab"]:
        """The recorded run's logits at one position per row."""
        return unembed_at(self.model, self.final_resid, positions)

    def run(
        self,
        start: int,
        resid: Float[torch.Tensor, "rows pos d_model"],
        positions: Int[torch.Tensor, " rows"],
    ) -> Float[torch.Tensor, "rows d_vocab"]:
        """Blocks ``start``.. on ``resid`` (K stacked copies of the recorded batch); logits at ``positions``."""
        try:
            return unembed_at(self.model, self._blocks(start, resid), positions)
        finally:
            self.model.wiring.clear_state()

    def run_resid(
        self, start: int, resid: Float[torch.Tensor, "rows pos d_model"]
    ) -> Float[torch.Tensor, "rows pos d_model"]:
        """Blocks ``start``.. on ``resid`` (K stacked copies of the recorded batch): the final residual stream."""
        try:
            return self._blocks(start, resid)
        finally:
            self.model.wiring.clear_state()

    def _blocks(self, start: int, resid: torch.Tensor) -> torch.Tensor:
        if resid.shape[0] % self.batch:
            raise ValueError(f"{resid.shape[0]} rows are not a whole number of copies of the batch of {self.batch}")
        copies = resid.shape[0] // self.batch
        model = self.model
        hidden = resid
        for layer in range(start, model.cfg.n_layers):
            args = _expand(self._args[layer], self.batch, copies)
            kwargs = _expand(self._kwargs[layer], self.batch, copies)
            out = model.wiring.blocks[layer].block(hidden, *args, **kwargs)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden
