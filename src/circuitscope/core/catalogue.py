"""What each family offers, read off its adapter: hook point names and shapes, and capabilities.

Nothing here needs a model. :func:`family_hooks` lists the hook points an adapter's blocks get, as
name templates (``blocks.{L}.attn.hook_z``) with their axis names, each flagged ``always`` or
``conditional`` (present only under some configurations: ``hook_resid_mid`` under a switchable
parallel residual, the attention hooks of a hybrid's attention layers, a mixture-of-experts
family's dense blocks). tests/cli/test_info_cli.py checks it against every tiny model's wired hooks,
so the catalogue cannot drift from ``core/wiring.py``. :func:`family_capabilities` says which
analyses a family supports (GGUF: ``models/gguf_limits.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from circuitscope.models.base import Adapter
from circuitscope.models.gguf_limits import gguf_status

__all__ = ["Capabilities", "FamilyHooks", "HookTemplate", "Presence", "family_capabilities", "family_hooks"]

Presence = Literal["always", "conditional"]
"""``always``: on every block of every model of the family; ``conditional``: only under some configurations."""

_BPD = ("batch", "pos", "d_model")
_HEADS = ("batch", "pos", "head", "d_head")
_KV_HEADS = ("batch", "pos", "kv_head", "d_head")  # fewer than head under grouped-query attention
_PATTERN = ("batch", "head", "query_pos", "key_pos")
_MLP = ("batch", "pos", "d_mlp")


@dataclass(frozen=True)
class HookTemplate:
    """One hook point of a family: its name (``blocks.{L}.`` for a per-block one) and its tensor's axes."""

    name: str
    """Full name; per-block names start with ``blocks.{L}.``."""
    axes: tuple[str, ...]
    """Axis names of the hooked tensor, in order."""
    presence: Presence
    """Whether every model of the family has it (see :data:`Presence`)."""
    condition: str | None = None
    """When a conditional hook is there, in words; None for ``always``."""

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "axes": list(self.axes)}


@dataclass(frozen=True)
class FamilyHooks:
    """Every hook point one family's models can have, model level then per block, in forward order."""

    family: str
    model_types: tuple[str, ...]
    hooks: tuple[HookTemplate, ...]

    @property
    def model_level(self) -> tuple[HookTemplate, ...]:
        return tuple(h for h in self.hooks if not h.name.startswith("blocks."))

    @property
    def per_block(self) -> tuple[HookTemplate, ...]:
        return tuple(h for h in self.hooks if h.name.startswith("blocks."))

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "model_types": list(self.model_types),
            "hooks": [h.to_json() for h in self.hooks],
        }


_ATTENTION_LAYERS = "attention layers (not the mixer layers)"
_MIXER_LAYERS = "mixer layers (config.layer_types)"


class _Hooks:
    """Collects templates in forward order; a name added twice keeps its first place, conditional wins."""

    def __init__(self) -> None:
        self.items: dict[str, HookTemplate] = {}

    def add(self, name: str, axes: tuple[str, ...], condition: str | None = None) -> None:
        old = self.items.get(name)
        if old is not None and {old.condition, condition} == {_ATTENTION_LAYERS, _MIXER_LAYERS}:
            self.items[name] = HookTemplate(name, axes, "always")  # a hybrid's every layer has it
            return
        if old is not None and (old.presence == "conditional" or condition is None):
            return
        presence: Presence = "always" if condition is None else "conditional"
        self.items[name] = HookTemplate(name, axes, presence, condition)


def _attention(h: _Hooks, ad: Adapter, when: str | None) -> None:
    b = "blocks.{L}."
    if ad.ln1 is not None:
        h.add(b + "ln1.hook_normalized", _BPD, when)
    h.add(b + "attn.hook_q", _HEADS, when)
    h.add(b + "attn.hook_k", _KV_HEADS, when)
    h.add(b + "attn.hook_v", _KV_HEADS, when)
    if ad.rotary:
        h.add(b + "attn.hook_rot_q", _HEADS, when)
        h.add(b + "attn.hook_rot_k", _KV_HEADS, when)
    h.add(b + "attn.hook_attn_scores", _PATTERN, when)
    h.add(b + "attn.hook_pattern", _PATTERN, when)
    h.add(b + "attn.hook_z", _HEADS, when)
    h.add(b + "attn.hook_result", ("batch", "pos", "head", "d_model"), when)
    h.add(b + "hook_attn_out", _BPD, when)
    parallel = ad.residual == "parallel"
    if not parallel:
        switch = ad.parallel_residual_attr
        h.add(b + "hook_resid_mid", _BPD, f"config.{switch} is false" if switch else when)


def _mlp(h: _Hooks, ad: Adapter, when: str | None) -> None:
    b = "blocks.{L}."
    if ad.ln2 is not None:
        parallel = ad.residual == "parallel" or ad.parallel_residual_attr is not None
        own_norm = "the block has its own norm before the MLP (under the parallel residual ln1 may feed both)"
        ln2_when = when or (own_norm if parallel else None)
        h.add(b + "ln2.hook_normalized", _BPD, ln2_when)
    moe = ad.experts
    dense_when = when
    if moe is not None:
        from circuitscope.core.moe import EXPERT_HOOKS, SHARED_HOOK

        axes = {
            "mlp.hook_router_logits": ("batch", "pos", "expert"),
            "mlp.hook_expert_indices": ("batch", "pos", "k"),
            "mlp.hook_expert_weights": ("batch", "pos", "k"),
            "mlp.hook_expert_out": ("batch", "pos", "k", "d_model"),
        }
        moe_when = when if ad.mlp_in is None else "blocks whose MLP has the router"
        for name in EXPERT_HOOKS:
            h.add(b + name, axes[name], moe_when)
        if moe.shared_expert is not None:
            h.add(b + SHARED_HOOK, _BPD, moe_when)
        dense_when = "blocks without the router (dense MLP layers)"
    if ad.mlp_in is not None:
        h.add(b + "mlp.hook_pre", _MLP, dense_when)
        if ad.mlp_in_linear is not None or ad.mlp_gate_up is not None:
            h.add(b + "mlp.hook_pre_linear", _MLP, dense_when)
        h.add(b + "mlp.hook_post", _MLP, dense_when)
    if ad.mlp_out is not None:
        h.add(b + "hook_mlp_out", _BPD, when)


def _mixer(h: _Hooks, ad: Adapter, when: str | None) -> None:
    b = "blocks.{L}."
    if ad.ln1 is not None:
        h.add(b + "ln1.hook_normalized", _BPD, when)
    h.add(b + "mixer.hook_in_proj", ("batch", "pos", "d_in_proj"), when)
    if ad.mixer_kind == "selective_scan":
        h.add(b + "mixer.hook_conv", ("batch", "pos", "d_inner"), when)
        h.add(b + "mixer.hook_x_proj", ("batch", "pos", "d_x_proj"), when)
    else:
        h.add(b + "mixer.hook_ssm_out", ("batch", "pos", "d_inner"), when)
    h.add(b + "mixer.hook_out_proj_in", ("batch", "pos", "d_inner"), when)
    h.add(b + "hook_mixer_out", _BPD, when)
    if ad.mlp_out is not None:
        h.add(b + "hook_resid_mid", _BPD, when)


def family_hooks(adapter: Adapter) -> FamilyHooks:
    """The hook points ``adapter``'s models can have, each ``always`` or ``conditional``, in forward order."""
    h = _Hooks()
    h.add("hook_embed", _BPD)
    if adapter.pos_embed is not None:
        h.add("hook_pos_embed", _BPD)  # batch 1 where the positions are shared by the batch (GPT-2, BERT)
    h.add("blocks.{L}.hook_resid_pre", _BPD)
    hybrid = adapter.mixer is not None and adapter.attn is not None
    if adapter.attn is not None:
        _attention(h, adapter, _ATTENTION_LAYERS if hybrid else None)
    if adapter.mixer is not None:
        _mixer(h, adapter, _MIXER_LAYERS if hybrid else None)
    _mlp(h, adapter, None)
    h.add("blocks.{L}.hook_resid_post", _BPD)
    if adapter.final_norm is not None:
        h.add("ln_final.hook_normalized", _BPD)
    return FamilyHooks(adapter.family, adapter.model_types, tuple(h.items.values()))


@dataclass(frozen=True)
class Capabilities:
    """What circuitscope can do with one family's models; each value is a short answer (``yes``, ``no: why``)."""

    family: str
    hooks: str
    """The residual-stream, MLP and model-level hooks."""
    per_head: str
    """Per-head hooks (``attn.hook_q/k/v/z/result``, patterns) and head weights."""
    patching: str
    """Activation, attribution and path patching (block replay from the patched layer to the logits)."""
    eap: str
    """Circuit discovery over heads and MLPs (EAP, EAP-IG, ACDC)."""
    saes: str
    """Training and splicing SAEs on any hook (the residual stream first)."""
    steering: str
    """Steering vectors added to the residual stream, with generation."""
    gguf: str
    """Loading ``.gguf`` files (dequantized by transformers' GGUF loader)."""

    def to_json(self) -> dict[str, str]:
        return asdict(self)

    def line(self) -> str:
        """One line for a person: ``hooks yes · per-head hooks yes · ...``."""
        parts = [
            ("hooks", self.hooks),
            ("per-head hooks", self.per_head),
            ("patching", self.patching),
            ("EAP", self.eap),
            ("SAEs", self.saes),
            ("steering", self.steering),
            ("GGUF", self.gguf),
        ]
        return " · ".join(f"{name} {value}" for name, value in parts)


def family_capabilities(adapter: Adapter) -> Capabilities:
    """What works for ``adapter``'s family, read off its adapter (the checks the analyses make)."""
    decodes = adapter.causal and adapter.unembed is not None and adapter.final_norm is not None
    hybrid = adapter.attn is not None and adapter.mixer is not None
    if adapter.attn is None:
        per_head = "no: a state-space mixer has no heads (residual-stream hooks only)"
    else:
        per_head = "attention layers only (the mixer layers have no heads)" if hybrid else "yes"
    if decodes and hybrid:
        patching = "head targets on the attention layers only (mixer_out on the mixer layers)"
    elif decodes:
        patching = "yes" if adapter.attn is not None else "residual-stream targets (no head targets)"
    else:
        patching = "no: an encoder (patching replays to next-token logits)"
    if not adapter.causal:
        eap = "no: an encoder (circuit discovery needs a causal LM)"
    elif adapter.residual == "post_norm":
        eap = "no: post-norm blocks"
    elif adapter.attn is None or hybrid:
        eap = "no: needs attention heads in every layer"
    elif adapter.ln1 is None:  # circuits/intervene.py puts an MLP's input edges in at ln2, attention's at ln1
        eap = "no: blocks without input norms (the edges go in at ln1/ln2)"
    elif adapter.ln2 is None:
        eap = "no: one norm feeds both attention and the MLP (the MLP's edges go in at ln2)"
    elif adapter.parallel_residual_attr is not None:
        eap = "yes; a config whose one norm feeds both attention and the MLP (Falcon-7B, parallel StableLM) is refused"
    else:
        eap = "yes"
    gguf = gguf_status(adapter.model_types)
    return Capabilities(
        family=adapter.family,
        hooks="yes",
        per_head=per_head,
        patching=patching,
        eap=eap,
        saes="yes",
        steering="yes" if decodes else "no: an encoder (steering generates text)",
        gguf=gguf,
    )
