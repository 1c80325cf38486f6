"""Norms and attention patterns frozen at their values on one prompt.

The local replacement model of an attribution graph holds every normalisation's scale and every attention
pattern at the value the real model computed on the prompt, so that what remains (embeddings, value and
output projections, the linear parts of the norms, the transcoders' decoders and skips) is linear.

:func:`record_scales` reads each norm's scale ``s(x)`` on a forward pass (a forward pre-hook on the norm's
module: it changes nothing). :func:`frozen_norms` then swaps each norm module's ``forward`` for the norm with
that scale held fixed (core/norms.py :class:`~circuitscope.core.norms.FrozenNorm`), for as long as the block
lasts; the hook points on the norms' outputs still fire, on the frozen values. Frozen patterns are plain hook
functions on ``hook_pattern`` (:func:`pattern_hooks`).

The replacement model throws away what the MLPs and the attention scores compute: its MLP outputs are the
transcoders' (its write hooks replace ``hook_mlp_out``) and its patterns are the recorded ones. So
:func:`skipped_projections` makes each dense MLP's projections and each separate query and key projection
return zeros instead (on Gemma-3-270M that is about 80% of the forward pass's matrix products).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from circuitscope.core.norms import FrozenNorm, frozen_norm

if TYPE_CHECKING:
    from circuitscope.core.hook_points import HookPoint
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["frozen_norms", "norm_modules", "pattern_hooks", "record_scales", "skipped_projections"]


def norm_modules(model: HookedModel) -> list[nn.Module]:
    """Every norm on the residual stream's paths, in forward order: per block the attention input norm, the
    norm after attention (Gemma 2/3), the MLP input norm and the norm after the MLP, then the final norm."""
    found: list[nn.Module] = []
    for block in model.wiring.blocks:
        for name in ("ln1", "attn_out_norm", "ln2", "mlp_out_norm"):
            module = getattr(block, name, None)
            if isinstance(module, nn.Module) and all(module is not m for m in found):
                found.append(module)
    final = model.wiring.final_norm
    if final is not None:
        found.append(final)
    return found


@contextmanager
def record_scales(model: HookedModel) -> Iterator[list[torch.Tensor]]:
    """Within the block, each forward pass records every norm's scale ``[batch, pos, 1]`` (float32) in the list
    it yields, in :func:`norm_modules` order (a later pass overwrites)."""
    modules = norm_modules(model)
    frozen = [frozen_norm(m) for m in modules]
    scales: list[torch.Tensor] = [torch.empty(0)] * len(modules)

    def recorder(i: int) -> Any:
        def hook(_m: nn.Module, args: tuple[Any, ...]) -> None:
            scales[i] = _scale(frozen[i], args[0].detach())

        return hook

    handles = [m.register_forward_pre_hook(recorder(i)) for i, m in enumerate(modules)]
    try:
        yield scales
    finally:
        for h in handles:
            h.remove()


def _wide(x: torch.Tensor) -> torch.dtype:
    """float32 for half precision, else the tensor's own dtype (float64 stays float64)."""
    return torch.promote_types(x.dtype, torch.float32)


def _scale(norm: FrozenNorm, x: torch.Tensor) -> torch.Tensor:
    """``s(x)`` at ``x``'s own precision (FrozenNorm.scale computes in float32 whatever the input)."""
    xf = x.to(_wide(x))
    if norm.center:
        xf = xf - xf.mean(-1, keepdim=True)
    return torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + norm.eps)


def _frozen_forward(norm: FrozenNorm, scale: torch.Tensor) -> Any:
    def forward(x: torch.Tensor, *_args: Any, **_kwargs: Any) -> torch.Tensor:
        wide = _wide(x)
        xf = x.to(wide)
        if norm.center:
            xf = xf - xf.mean(-1, keepdim=True)
        y = xf * scale.to(device=x.device, dtype=wide) * norm.weight.to(wide)
        if norm.bias is not None:
            y = y + norm.bias.to(wide)
        return y.to(x.dtype)

    return forward


@contextmanager
def frozen_norms(model: HookedModel, scales: list[torch.Tensor]) -> Iterator[None]:
    """Within the block every norm applies the recorded scale (``[1 or batch, pos, 1]``) instead of its own."""
    modules = norm_modules(model)
    if len(scales) != len(modules):
        raise ValueError(f"{len(scales)} recorded scales for {len(modules)} norms: record them on this model")
    norms = [frozen_norm(m) for m in modules]  # read before forward is swapped (frozen_norm probes forward)
    try:
        for module, norm, scale in zip(modules, norms, scales, strict=True):
            module.forward = _frozen_forward(norm, scale)  # type: ignore[method-assign]
        yield
    finally:
        for module in modules:
            module.__dict__.pop("forward", None)


def _zeros_forward(width: int) -> Any:
    def forward(x: torch.Tensor, *_args: Any, **_kwargs: Any) -> torch.Tensor:
        return x.new_zeros((*x.shape[:-1], width))

    return forward


def _mlp_container(block: nn.Module, down: nn.Module | None) -> nn.Module | None:
    """The module holding the MLP's output projection as a direct child (not the block itself), or None."""
    if down is None:
        return None
    for module in block.modules():
        if module is not block and any(child is down for child in module.children()):
            return module
    return None


def _swap(module: object, width: object, swapped: list[nn.Module]) -> None:
    if isinstance(module, nn.Module) and isinstance(width, int):
        module.forward = _zeros_forward(width)  # type: ignore[method-assign]
        swapped.append(module)


def _width(module: object) -> object:
    return getattr(module, "out_features", None) or getattr(module, "nf", None)


@contextmanager
def skipped_projections(model: HookedModel) -> Iterator[None]:
    """Within the block every dense MLP and every separate query and key projection return zeros of their
    output's shape (their forward hooks still fire): for passes whose ``hook_mlp_out`` and ``hook_pattern``
    hooks replace what they feed. The MLP is skipped whole when a module holds its output projection (Gemma's
    and GPT-2's ``mlp``), else projection by projection; a projection whose output width is not known
    (``out_features``, or GPT-2's ``nf``) or that is fused with the values keeps computing, which changes
    nothing but time."""
    swapped: list[nn.Module] = []
    try:
        for block in model.wiring.blocks:
            container = _mlp_container(block.block, block.mlp_down)
            if container is not None and container is not block.ln2:
                _swap(container, model.cfg.d_model, swapped)
            else:
                for name in ("mlp_in", "mlp_in_linear", "mlp_gate_up", "mlp_down"):
                    _swap(getattr(block, name, None), _width(getattr(block, name, None)), swapped)
            for name in ("q", "k"):
                _swap(getattr(block, name, None), _width(getattr(block, name, None)), swapped)
        yield
    finally:
        for module in swapped:
            module.__dict__.pop("forward", None)


def pattern_hooks(patterns: list[torch.Tensor]) -> list[tuple[str, Any]]:
    """Hooks that hold each layer's ``hook_pattern`` at the recorded ``[1, head, q, k]`` pattern (any batch)."""

    def holder(pattern: torch.Tensor) -> Any:
        def hook(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
            return pattern.to(x.dtype).expand_as(x)

        return hook

    return [(f"blocks.{layer}.attn.hook_pattern", holder(p)) for layer, p in enumerate(patterns)]
