"""Feature edits through the transcoders: zero, scale or set transcoder features at given positions.

``with model.apply(FeatureEdit(transcoders, layer=3, features=(17,), mode="zero")):`` runs the real model with
layer 3's features 17 edited: at layer 3's transcoder input the features' activations ``a`` are read, their
edited values ``a'`` computed (``0``, ``value * a`` or ``value``), and ``(a' - a) @ W_dec`` added to the MLP output
of every layer the features write to (their own; every later one for cross-layer transcoders). The MLPs
themselves still run: the edit moves the real model by what the transcoders say the features contribute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import torch

from circuitscope.transcoders.errors import TranscoderConfigError, TranscoderModelError
from circuitscope.transcoders.modules import TranscoderSet

if TYPE_CHECKING:
    from circuitscope.core.hook_points import HookFn, HookPoint
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["EDIT_MODES", "EditMode", "FeatureEdit"]

EditMode = Literal["zero", "scale", "set"]
"""``zero``: the features off; ``scale``: times ``value``; ``set``: equal to ``value``."""
EDIT_MODES: tuple[str, ...] = get_args(EditMode)


@dataclass(frozen=True, eq=False)
class FeatureEdit:
    """An intervention: some features of one layer's transcoder zeroed, scaled or set, at some positions."""

    transcoders: TranscoderSet
    """The transcoders the features belong to."""
    layer: int
    """The layer whose transcoder's features are edited."""
    features: tuple[int, ...]
    """The feature indices."""
    mode: EditMode = "zero"
    """``zero``, ``scale`` or ``set``."""
    value: float = 0.0
    """The factor of ``scale``, the activation of ``set`` (unused by ``zero``)."""
    positions: tuple[int, ...] | None = None
    """The positions of each pass to edit (None: every position)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(int(f) for f in self.features))
        if self.positions is not None:
            object.__setattr__(self, "positions", tuple(int(p) for p in self.positions))
        if self.mode not in EDIT_MODES:
            raise TranscoderConfigError(f"mode must be one of {', '.join(EDIT_MODES)}, got {self.mode!r}")
        if not self.features:
            raise TranscoderConfigError("give at least one feature index to edit, e.g. features=(17,)")
        d_sae = self.transcoders.cfg.d_sae
        bad = [f for f in self.features if not 0 <= f < d_sae]
        if bad:
            raise TranscoderConfigError(
                f"feature indices {bad} are out of range: the transcoders have {d_sae} features"
            )
        if self.positions is not None and any(p < 0 for p in self.positions):
            raise TranscoderConfigError(f"positions must be non-negative, got {list(self.positions)}")
        if not math.isfinite(self.value):
            raise TranscoderConfigError(f"value must be a finite number, got {self.value!r}")
        self.transcoders.index(self.layer)  # a layer without a transcoder is refused here

    def check(self, model: HookedModel) -> None:
        self.transcoders.check(model)

    def _mask(self, shape: torch.Size, device: torch.device) -> torch.Tensor:
        """[pos, 1] of 1 at the edited positions."""
        mask = torch.zeros(shape[-2], 1, device=device)
        if self.positions is None:
            return mask + 1
        inside = [p for p in self.positions if p < shape[-2]]
        if len(inside) != len(self.positions):
            raise TranscoderModelError(
                f"positions {list(self.positions)} do not all exist in a pass of {shape[-2]} positions"
            )
        mask[inside] = 1
        return mask

    def hooks(self, model: HookedModel) -> list[tuple[str, HookFn]]:
        tc, ids = self.transcoders, list(self.features)
        delta: list[torch.Tensor] = []

        def read(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
            acts = tc.encode(self.layer, x)[..., ids]
            new = torch.zeros_like(acts) if self.mode == "zero" else acts * self.value
            if self.mode == "set":
                new = torch.full_like(acts, self.value)
            delta[:] = [(new - acts) * self._mask(x.shape, x.device).to(acts.dtype)]
            return x

        def write(decoder: torch.Tensor) -> HookFn:
            rows = decoder[ids]

            def hook(out: torch.Tensor, hook: HookPoint) -> torch.Tensor:
                return out + (delta[0] @ rows.to(delta[0].dtype)).to(out.dtype)

            return hook

        pairs: list[tuple[str, HookFn]] = [(tc.input_hook(self.layer), read)]
        pairs += [(tc.output_hook(target), write(dec)) for target, dec in tc.decoders(self.layer)]
        return pairs
