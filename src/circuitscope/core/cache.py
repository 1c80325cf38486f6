"""ActivationCache: the activations of one run, with residual-stream decompositions.

Axis names used across circuitscope (shapes are API):

- ``batch``: prompts in the batch.
- ``pos`` / ``query_pos`` / ``key_pos``: token positions (BOS included).
- ``head``: attention heads (``kv_head``: key/value heads under grouped-query attention).
- ``d_model``, ``d_head``, ``d_mlp``, ``d_vocab``: widths (see ``ModelConfig``).
- ``layer``: transformer blocks; ``component``: the entries of a :class:`Stack`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float, Int

from circuitscope.core.capabilities import explain_missing_hook, require_attention, sublayer_names
from circuitscope.core.names import act_name, closest_names
from circuitscope.errors import HookNameError, ShapeError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["ActivationCache", "Stack"]


@dataclass(frozen=True)
class Stack:
    """Residual-stream components stacked on a leading axis, with one label each."""

    tensor: Float[torch.Tensor, "component batch pos d_model"]
    """The components."""
    labels: list[str]
    """One label per component (``embed``, ``3_attn_out``, ``L5H2``, ...)."""

    def __post_init__(self) -> None:
        if self.tensor.shape[0] != len(self.labels):
            raise ShapeError(f"{self.tensor.shape[0]} components but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def total(self) -> Float[torch.Tensor, "batch pos d_model"]:
        """Sum of all components."""
        return self.tensor.sum(0)


class ActivationCache(Mapping[str, torch.Tensor]):
    """Cached activations keyed by hook name; ``cache["resid_post", 6]`` also works."""

    def __init__(
        self, data: dict[str, torch.Tensor], model: HookedModel, tokens: Int[torch.Tensor, "batch pos"]
    ) -> None:
        self._data = data
        self.model = model
        self.tokens = tokens
        """The tokens actually run, BOS included."""

    # ------------------------------------------------------------------ mapping
    def _key(self, key: str | tuple[str, int]) -> str:
        if isinstance(key, tuple) and len(key) == 2:
            name, layer = key
            self._check_layer(layer)
            return act_name(name, layer % self.model.cfg.n_layers)
        if not isinstance(key, str):
            raise HookNameError(
                f"a cache key is a hook name or a (short name, layer) pair, e.g. cache['resid_post', 0]; got {key!r}"
            )
        if key in self._data or key.startswith(("blocks.", "hook_", "ln_final")):
            return key
        return act_name(key)

    def __getitem__(self, key: str | tuple[str, int]) -> torch.Tensor:  # type: ignore[override]
        name = self._key(key)
        if name not in self._data:
            explain_missing_hook(self.model.cfg, name)  # a head hook of a mixer layer: say so
            where = "is not a hook of this model" if name not in self.model.hook_names else "was not cached"
            near = ", ".join(repr(n) for n in closest_names(name, self._data, 3))
            raise HookNameError(
                f"{name!r} {where}; cached names closest to it: {near}. Pass names=... covering it to run_with_cache."
            )
        return self._data[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"ActivationCache({len(self._data)} activations, tokens {tuple(self.tokens.shape)})"

    @property
    def str_tokens(self) -> list[list[str]]:
        return [self.model.to_str_tokens(row) for row in self.tokens]

    def to(self, device: str | torch.device) -> ActivationCache:
        return ActivationCache({k: v.to(device) for k, v in self._data.items()}, self.model, self.tokens.to(device))

    def _check_layer(self, layer: int, allow_end: bool = False) -> None:
        n = self.model.cfg.n_layers
        hi = n if allow_end else n - 1
        if isinstance(layer, bool) or not hasattr(layer, "__index__"):
            raise ShapeError(f"layer must be an integer index (0..{hi} or negative), got {layer!r}")
        if not -n <= layer <= hi:
            raise ShapeError(f"layer {layer} is out of range for a model with {n} layers (use 0..{hi} or negative)")

    # ------------------------------------------------------------------ stacks
    def stack(self, name: str, layers: list[int] | None = None) -> Float[torch.Tensor, "layer ..."]:
        """One activation (short name, e.g. ``"resid_post"``) of every layer stacked: [layer, ...]."""
        idx = range(self.model.cfg.n_layers) if layers is None else layers
        return torch.stack([self[name, layer] for layer in idx])

    def accumulated_resid(self, layer: int | None = None, incl_mid: bool = False, apply_ln: bool = False) -> Stack:
        """The residual stream before each block up to ``layer`` (all blocks and the final output if None).

        With ``apply_ln`` the final norm is applied with the scale cached for the final residual
        stream, as a logit lens does.
        """
        n = self.model.cfg.n_layers
        if layer is not None:
            self._check_layer(layer, allow_end=True)
        end = n if layer is None else layer % (n + 1) if layer >= 0 else n + layer
        parts: list[torch.Tensor] = []
        labels: list[str] = []
        for i in range(end):
            parts.append(self["resid_pre", i])
            labels.append(f"{i}_pre")
            if incl_mid and act_name("resid_mid", i) in self.model.hook_names:
                parts.append(self["resid_mid", i])
                labels.append(f"{i}_mid")
        if layer is None or end == n:
            parts.append(self["resid_post", n - 1])
            labels.append("final_post")
        if not parts:
            raise ShapeError(f"layer={layer} selects no residual stream; give a layer of 1..{n}, or None for all")
        stack = Stack(torch.stack(parts), labels)
        return self.apply_ln_to_stack(stack) if apply_ln else stack

    def decompose_resid(self, layer: int | None = None, mlp_input: bool = False) -> Stack:
        """Embeddings and every attention and MLP output before block ``layer``; they sum to its input.

        A state-space mixer layer contributes its ``mixer_out`` (label ``L_mixer_out``) where attention would.

        ``layer=None`` decomposes the final residual stream (``resid_post`` of the last block).
        ``mlp_input`` adds block ``layer``'s attention output, decomposing its ``resid_mid``.
        """
        cfg = self.model.cfg
        end = cfg.n_layers if layer is None else layer % cfg.n_layers if layer >= 0 else cfg.n_layers + layer
        if layer is not None:
            self._check_layer(layer)
        parts: list[torch.Tensor] = []
        labels: list[str] = []
        if "hook_pos_embed" in self.model.hook_names and cfg.residual != "post_norm":
            parts += [self["hook_embed"], self["hook_pos_embed"]]
            labels += ["embed", "pos_embed"]
        else:
            parts.append(self["resid_pre", 0])
            labels.append("embed")
        names = self.model.hook_names
        for i in range(end):  # each block's sublayers: attn_out (mixer_out for a state-space layer), mlp_out
            for sub in sublayer_names(cfg, i, names):
                parts.append(self[sub, i])
                labels.append(f"{i}_{sub}")
        if mlp_input and layer is not None:
            first, *rest = sublayer_names(cfg, end, names)
            if not rest:
                raise ShapeError(
                    f"block {end} of this {cfg.family} model has no MLP, so no resid_mid to decompose; "
                    f"decompose_resid(layer={end + 1}) decomposes its output"
                )
            parts.append(self[first, end])
            labels.append(f"{end}_{first}")
        return Stack(torch.stack(torch.broadcast_tensors(*parts)), labels)

    def stack_head_results(self, layer: int = -1) -> Stack:
        """Every head's output (``hook_result``) of the first ``layer`` blocks (all if -1): [layer*head, ...]."""
        n = self.model.cfg.n_layers
        if layer == -1:
            layer = n
        if not 0 <= layer <= n:
            raise ShapeError(f"layer={layer}: give the number of blocks to include, 0..{n}, or -1 for all")
        require_attention(self.model.cfg, "stacking head results (per-head DLA)", range(layer))
        parts: list[torch.Tensor] = []
        labels: list[str] = []
        for i in range(layer):
            res = self["result", i]  # [batch pos head d_model]
            parts.append(res.movedim(-2, 0))
            labels += [f"L{i}H{h}" for h in range(res.shape[-2])]
        if not parts:
            raise ShapeError("layer=0 selects no heads")
        return Stack(torch.cat(parts), labels)

    def apply_ln_to_stack(self, stack: Stack, layer: int | None = None) -> Stack:
        """Push each component through a norm with the scale cached for the real residual stream.

        ``layer=None`` uses the final norm (scale from the final residual stream); ``layer=L``
        uses block L's ``ln1`` (scale from ``resid_pre`` of block L). The norm's bias is not
        added (it is not part of any component), so for a LayerNorm family the components sum
        to the normed stream minus the bias.
        """
        wiring = self.model.wiring
        if layer is None:
            module = wiring.final_norm
            if module is None:
                raise ShapeError(f"the {self.model.cfg.family} family has no final norm to apply")
            total = self["resid_post", self.model.cfg.n_layers - 1]
        else:
            self._check_layer(layer)
            module = wiring.blocks[layer].ln1
            if module is None:
                raise ShapeError(f"the {self.model.cfg.family} family has no ln1 before attention")
            total = self["resid_pre", layer]
        norm = wiring.frozen(module)
        scale = norm.scale(total)
        return Stack(norm.apply(stack.tensor, scale.to(stack.tensor.device)), stack.labels)
