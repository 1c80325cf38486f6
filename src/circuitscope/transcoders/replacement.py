"""The replacement model: every covered MLP's output replaced by the transcoders' estimate (an intervention).

``with model.apply(MLPReplacement(transcoders)):`` (or ``interventions=[...]``) runs the model with
each layer's ``hook_mlp_out`` replaced by the transcoders' estimate from the inputs the layers see
in that run (so the replacement compounds from layer to layer, as in the replacement model of
circuit tracing). ``keep_error=True`` adds the error term ``mlp_out - estimate`` back, detached
from the features, as :class:`~circuitscope.sae.SAESplice` does: the output then equals the real
model's while gradients reach the features. Positions holding BOS keep their true output when the
transcoders were trained without BOS (``skip_bos=None`` follows ``cfg.exclude_bos``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from circuitscope.core.hook_points import HookFn, HookPoint
from circuitscope.core.hooked_model import HookedModel
from circuitscope.interventions import PositionCounter
from circuitscope.transcoders.modules import TranscoderSet

__all__ = ["REPLACEMENT_SUFFIXES", "MLPReplacement"]

REPLACEMENT_SUFFIXES = ("transcoder.hook_acts", "transcoder.hook_estimate", "transcoder.hook_error")
"""What :meth:`MLPReplacement.hook_fns` records per layer, after ``blocks.L.``: features, estimate, error."""


@dataclass(frozen=True, eq=False)
class MLPReplacement:
    """The transcoders' estimates in place of the MLPs' outputs (an intervention for ``model.apply``)."""

    transcoders: TranscoderSet
    """The transcoders; every layer they cover is replaced."""
    keep_error: bool = False
    """Add the (detached) error ``mlp_out - estimate`` back, so the output equals the real model's."""
    skip_bos: bool | None = None
    """Keep the true output at BOS positions (None: ``transcoders.cfg.exclude_bos``)."""

    @property
    def fingerprint(self) -> str:
        """The fingerprint of the model the transcoders belong to ('' = unchecked)."""
        return self.transcoders.fingerprint

    def check(self, model: HookedModel) -> None:
        self.transcoders.check(model)

    def hooks(self, model: HookedModel) -> list[tuple[str, HookFn]]:
        return self.hook_fns(model)

    def hook_fns(
        self, model: HookedModel, record: dict[str, torch.Tensor] | None = None, grad: bool = False
    ) -> list[tuple[str, HookFn]]:
        """The hooks of one scope; with ``record``, each pass writes :data:`REPLACEMENT_SUFFIXES` into it."""
        tc = self.transcoders
        skip = tc.cfg.exclude_bos if self.skip_bos is None else self.skip_bos
        bos = model.tok.bos_token_id if skip and model.tokenizer is not None else None
        acts: dict[int, torch.Tensor] = {}
        inputs: dict[int, torch.Tensor] = {}
        positions = PositionCounter()
        start = [0]  # where the current pass starts (counted at the first layer's input)
        keep = (lambda t: t) if grad else (lambda t: t.detach())

        def read(layer: int) -> HookFn:
            def hook(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
                if layer == tc.layers[0]:
                    start[0] = positions.offset(x)
                inputs[layer] = x
                acts[layer] = tc.encode(layer, x)
                return x

            return hook

        def replace(layer: int) -> HookFn:
            def hook(out: torch.Tensor, hook: HookPoint) -> torch.Tensor:
                estimate = tc.estimate(layer, acts, inputs[layer]).to(out.dtype)
                error = out - estimate
                new = estimate + error.detach() if self.keep_error else estimate
                tokens = model.pass_tokens
                if bos is not None and start[0] == 0 and tokens is not None:
                    new = torch.where(_bos_at_start(tokens, bos)[..., None], out, new)
                if record is not None:
                    record[f"blocks.{layer}.transcoder.hook_acts"] = keep(acts[layer])
                    record[f"blocks.{layer}.transcoder.hook_estimate"] = keep(estimate)
                    record[f"blocks.{layer}.transcoder.hook_error"] = keep(error)
                return new

            return hook

        pairs: list[tuple[str, HookFn]] = []
        for layer in tc.layers:
            pairs += [(tc.input_hook(layer), read(layer)), (tc.output_hook(layer), replace(layer))]
        return pairs


def _bos_at_start(tokens: torch.Tensor, bos: int) -> torch.Tensor:
    """Boolean ``[batch, pos]``: True at position 0 of the rows that start with BOS."""
    mask = torch.zeros(tokens.shape, dtype=torch.bool, device=tokens.device)
    mask[:, 0] = tokens[:, 0] == bos
    return mask
