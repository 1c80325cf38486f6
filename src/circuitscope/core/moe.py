"""Hook points of a mixture-of-experts MLP, on the family's own router and experts modules.

An adapter that names ``Adapter.experts`` (a :class:`~circuitscope.models.MixtureOfExperts`) gets,
on every block whose MLP has the router, instead of ``mlp.hook_pre``/``hook_post``:

==========================================  ==========================================================
``blocks.L.mlp.hook_router_logits``          the router's logits, before softmax/top-k [batch pos expert];
                                             a rewrite re-routes: the top-k and its weights are recomputed
                                             from the rewritten logits the family's way (``Routing``)
``blocks.L.mlp.hook_expert_indices``         the chosen experts, best first           [batch pos k] (int64)
``blocks.L.mlp.hook_expert_weights``         their weights after the family's normalisation: what multiplies
                                             each chosen expert's output              [batch pos k]
``blocks.L.mlp.hook_expert_out``             each chosen expert's unweighted output   [batch pos k d_model]
``blocks.L.mlp.hook_shared_expert_out``      the shared expert's output, gated (what the block adds)
                                             [batch pos d_model]; only for a family with a shared expert
==========================================  ==========================================================

with the exact identity ``hook_mlp_out == combine_experts(hook_expert_weights, hook_expert_out)
(+ hook_shared_expert_out)``. No site is installed while none of these hooks is active, so the family's own
forward runs untouched. While ``hook_expert_out`` is active, the experts module runs once per top-k slot
(each call the family's own experts code, with weight 1) and :func:`combine_experts` sums the slots; that
sums in another order than the family's loop over experts (float32 rounding, ~1e-7).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from circuitscope.core.hook_points import HookPoint
from circuitscope.errors import ShapeError, UnsupportedAnalysisError
from circuitscope.models.base import MixtureOfExperts, resolve_path, try_resolve

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = [
    "EXPERT_HOOKS",
    "ExpertLayout",
    "MoEModules",
    "combine_experts",
    "expert_layout",
    "moe_modules",
    "moe_sites",
    "route",
]

EXPERT_HOOKS = ("mlp.hook_router_logits", "mlp.hook_expert_indices", "mlp.hook_expert_weights", "mlp.hook_expert_out")
"""The expert hook names of every MoE block (relative to ``blocks.L.``); plus ``mlp.hook_shared_expert_out``."""
SHARED_HOOK = "mlp.hook_shared_expert_out"

Install = Callable[[], Any]
"""Installs one site's PyTorch hooks; returns a handle with ``remove()``."""


class MoEModules:
    """The resolved modules and routing facts of one mixture-of-experts block."""

    def __init__(self, block: nn.Module, spec: MixtureOfExperts, text_config: Any) -> None:
        self.spec = spec
        self.block = resolve_path(block, spec.block, "experts.block")
        self.router = resolve_path(block, spec.router, "experts.router")
        self.experts = resolve_path(block, spec.experts, "experts.experts")
        self.shared = None if spec.shared_expert is None else resolve_path(block, spec.shared_expert, "shared_expert")
        self.shared_gate = (
            None if spec.shared_expert_gate is None else resolve_path(block, spec.shared_expert_gate, "shared_gate")
        )
        self.n_experts = int(getattr(text_config, spec.n_experts_attr))
        self.top_k = int(getattr(text_config, spec.top_k_attr))
        attr = spec.renormalize_attr
        self.renormalize = True if attr is None else bool(getattr(text_config, attr))
        self.lead: tuple[int, ...] = ()
        """[batch, pos] of the block's current input (set by each site's pre-hook on the block)."""


def moe_modules(block: nn.Module, spec: MixtureOfExperts | None, text_config: Any) -> MoEModules | None:
    """The MoE modules of one block, or None for a dense block (no router there) or a dense family."""
    if spec is None or try_resolve(block, spec.router) is None:
        return None
    return MoEModules(block, spec, text_config)


def route(logits: torch.Tensor, mods: MoEModules) -> tuple[torch.Tensor, torch.Tensor]:
    """``(top-k weights, top-k indices)`` from router logits ``[..., expert]``, the family's way.

    The same operations as the family's router, so unchanged logits give its weights bit for bit.
    """
    if mods.spec.routing == "softmax_topk":
        probs = torch.softmax(logits, dim=-1, dtype=torch.float)
        top, index = torch.topk(probs, mods.top_k, dim=-1)
        if mods.renormalize:
            top = top / top.sum(dim=-1, keepdim=True)
        return top, index
    top_logits, index = torch.topk(logits, mods.top_k, dim=-1)
    return torch.softmax(top_logits, dim=-1, dtype=top_logits.dtype), index


def combine_experts(weights: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """``sum_k weights[..., k] * outputs[..., k, :]``, slot by slot in order (the sum the MoE hooks make).

    ``weights``: [..., k]; ``outputs``: [..., k, d_model]. Returned in the outputs' dtype.
    """
    total = outputs[..., 0, :] * weights[..., 0, None]
    for slot in range(1, outputs.shape[-2]):
        total = total + outputs[..., slot, :] * weights[..., slot, None]
    return total.to(outputs.dtype)


class _Handles:
    """Several PyTorch hook handles (and forward overrides) removed together."""

    def __init__(self, handles: list[Any]) -> None:
        self.handles = handles

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []


class _ForwardOverride:
    """Replaces one module instance's ``forward`` until removed (its class's forward stays as it is)."""

    def __init__(self, module: nn.Module, forward: Callable[..., Any]) -> None:
        self.module = module
        module.forward = forward  # an instance attribute: nn.Module.__call__ picks it up

    def remove(self) -> None:
        if "forward" in self.module.__dict__:
            del self.module.forward


def _lead_hook(mods: MoEModules) -> Any:
    def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        x = args[0] if args else next(iter(kwargs.values()))
        mods.lead = tuple(x.shape[:-1])

    return mods.block.register_forward_pre_hook(hook, with_kwargs=True)


def _router_site(mods: MoEModules, logits_p: HookPoint, index_p: HookPoint, weights_p: HookPoint) -> Install:
    def hook(_m: nn.Module, _args: Any, output: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> Any:
        logits, weights, index = output
        lead = mods.lead
        if logits_p.active:
            seen = logits.view(*lead, logits.shape[-1])
            # always route from the hooked tensor, so gradients reach it (unchanged logits route bit for bit)
            logits = logits_p(seen).reshape(logits.shape)
            new_weights, index = route(logits, mods)
            weights = new_weights.to(weights.dtype)
        if index_p.active:
            index = index_p(index.view(*lead, index.shape[-1])).reshape(index.shape)
        if weights_p.active:
            weights = weights_p(weights.view(*lead, weights.shape[-1])).reshape(weights.shape)
        return logits, weights, index

    return lambda: _Handles([_lead_hook(mods), mods.router.register_forward_hook(hook)])


def _experts_site(mods: MoEModules, point: HookPoint) -> Install:
    experts = mods.experts
    own = type(experts).forward

    def forward(hidden: torch.Tensor, index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        ones = torch.ones_like(weights[..., :1])
        slots = [own(experts, hidden, index[..., k : k + 1], ones) for k in range(index.shape[-1])]
        outputs = torch.stack(slots, dim=-2)  # [tokens k d_model], unweighted
        seen = outputs.view(*mods.lead, *outputs.shape[-2:])
        return combine_experts(weights, point(seen).reshape(outputs.shape))

    return lambda: _Handles([_lead_hook(mods), _ForwardOverride(experts, forward)])


def _shared_site(mods: MoEModules, point: HookPoint) -> Install:
    gate = mods.shared_gate
    assert mods.shared is not None

    def shared_hook(_m: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        # the family's own product sigmoid(gate(x)) * shared(x), computed here so the hook sees what the block adds
        gated = output if gate is None else torch.sigmoid(gate.forward(args[0])) * output
        return point(gated.view(*mods.lead, gated.shape[-1])).reshape(output.shape)

    def gate_hook(_m: nn.Module, _args: Any, output: torch.Tensor) -> torch.Tensor:
        # sigmoid(+inf) == 1 exactly: the block's own product then passes the gated, hooked output unchanged
        return torch.full_like(output, float("inf"))

    def install() -> _Handles:
        assert mods.shared is not None
        handles = [_lead_hook(mods), mods.shared.register_forward_hook(shared_hook)]
        if gate is not None:
            handles.append(gate.register_forward_hook(gate_hook))
        return _Handles(handles)

    return install


def moe_sites(mods: MoEModules, point: Callable[[str], HookPoint]) -> list[tuple[tuple[HookPoint, ...], Install]]:
    """The expert hook points of one block (made by ``point(name)``) and the sites each needs."""
    logits, index, weights, out = (point(name) for name in EXPERT_HOOKS)
    sites: list[tuple[tuple[HookPoint, ...], Install]] = [
        ((logits, index, weights), _router_site(mods, logits, index, weights)),
        ((out,), _experts_site(mods, out)),
    ]
    if mods.shared is not None:
        shared = point(SHARED_HOOK)
        sites.append(((shared,), _shared_site(mods, shared)))
    return sites


@dataclass(frozen=True)
class ExpertLayout:
    """Which layers of a model route to experts, and how many."""

    layers: tuple[int, ...]
    """The blocks with a mixture-of-experts MLP."""
    n_experts: int
    """Experts per MoE layer."""
    top_k: int
    """Experts each token is sent to."""
    shared_expert: bool
    """The MoE blocks also add a shared expert (``mlp.hook_shared_expert_out``)."""

    def check(self, layer: int, expert: int | None = None) -> None:
        """A ShapeError for a layer that does not route to experts, or an expert index outside it."""
        if layer not in self.layers:
            raise ShapeError(f"layer {layer} has no mixture-of-experts MLP; the MoE layers are {list(self.layers)}")
        if expert is not None and not 0 <= expert < self.n_experts:
            raise ShapeError(f"expert {expert} is out of range: each MoE layer has experts 0..{self.n_experts - 1}")


def expert_layout(model: HookedModel, label: str | None = None) -> ExpertLayout:
    """The model's MoE layers; a model without any is an :class:`UnsupportedAnalysisError`.

    ``label`` names the model in that error (default: its ``name_or_path``).
    """
    found = [(i, b.moe) for i, b in enumerate(model.wiring.blocks) if getattr(b, "moe", None) is not None]
    if not found:
        label = label or getattr(model.hf_model.config, "_name_or_path", "") or "the model"
        raise UnsupportedAnalysisError(
            f"{label} (family {model.cfg.family}) has no mixture-of-experts layers; "
            "load a Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE, GraniteMoE or gpt-oss model"
        )
    first = found[0][1]
    assert first is not None
    return ExpertLayout(tuple(i for i, _ in found), first.n_experts, first.top_k, first.shared is not None)
