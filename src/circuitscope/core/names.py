"""Canonical hook names (TransformerLens's ``HookedTransformer`` names) and name matching.

A hook name is a dotted path such as ``blocks.6.hook_resid_post`` or
``blocks.3.attn.hook_pattern``. Short forms are accepted wherever a name is:
``("resid_post", 6)`` and ``act_name("pattern", 3)`` both expand to the full name.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable, Iterable, Sequence

from circuitscope.errors import HookNameError

__all__ = ["NameFilter", "act_name", "closest_names", "layer_of", "resolve_names"]

# Short name -> template of the full name. ``{l}`` is the layer.
_SHORT: dict[str, str] = {
    "embed": "hook_embed",
    "pos_embed": "hook_pos_embed",
    "resid_pre": "blocks.{l}.hook_resid_pre",
    "resid_mid": "blocks.{l}.hook_resid_mid",
    "resid_post": "blocks.{l}.hook_resid_post",
    "attn_out": "blocks.{l}.hook_attn_out",
    "mlp_out": "blocks.{l}.hook_mlp_out",
    "mixer_out": "blocks.{l}.hook_mixer_out",
    "q": "blocks.{l}.attn.hook_q",
    "k": "blocks.{l}.attn.hook_k",
    "v": "blocks.{l}.attn.hook_v",
    "rot_q": "blocks.{l}.attn.hook_rot_q",
    "rot_k": "blocks.{l}.attn.hook_rot_k",
    "attn_scores": "blocks.{l}.attn.hook_attn_scores",
    "scores": "blocks.{l}.attn.hook_attn_scores",
    "pattern": "blocks.{l}.attn.hook_pattern",
    "attn": "blocks.{l}.attn.hook_pattern",
    "z": "blocks.{l}.attn.hook_z",
    "result": "blocks.{l}.attn.hook_result",
    "pre": "blocks.{l}.mlp.hook_pre",
    "pre_linear": "blocks.{l}.mlp.hook_pre_linear",
    "post": "blocks.{l}.mlp.hook_post",
    "router_logits": "blocks.{l}.mlp.hook_router_logits",
    "expert_indices": "blocks.{l}.mlp.hook_expert_indices",
    "expert_weights": "blocks.{l}.mlp.hook_expert_weights",
    "expert_out": "blocks.{l}.mlp.hook_expert_out",
    "shared_expert_out": "blocks.{l}.mlp.hook_shared_expert_out",
    "ln1": "blocks.{l}.ln1.hook_normalized",
    "ln2": "blocks.{l}.ln2.hook_normalized",
    "ln_final": "ln_final.hook_normalized",
}

NameFilter = str | Sequence[str] | Callable[[str], bool] | None
"""What ``names=`` accepts: one name or glob pattern, a list of them, a predicate, or None (all)."""

_LAYER_RE = re.compile(r"^blocks\.(\d+)\.")


def act_name(name: str, layer: int | None = None) -> str:
    """Expand a short activation name (``"resid_post"``, ``"pattern"``, ...) to its full hook name.

    Full names pass through unchanged. ``act_name("resid_post", 6) == "blocks.6.hook_resid_post"``.
    """
    if not isinstance(name, str):
        raise HookNameError(f"activation names are strings such as 'resid_post', got {name!r}")
    if name.startswith(("hook_", "blocks.", "ln_final.")):
        return name
    template = _SHORT.get(name)
    if template is None:
        raise HookNameError(f"unknown short activation name {name!r}; use one of {sorted(_SHORT)} or a full hook name")
    if "{l}" in template:
        if layer is None:
            raise HookNameError(f"activation {name!r} lives in a block: pass a layer, e.g. act_name({name!r}, 0)")
        if isinstance(layer, bool) or not hasattr(layer, "__index__"):
            raise HookNameError(f"the layer of {name!r} must be an integer, e.g. act_name({name!r}, 0); got {layer!r}")
        return template.format(l=int(layer))
    return template


def layer_of(name: str) -> int | None:
    """The block index a hook name lives in, or None for ``hook_embed`` and ``ln_final``."""
    match = _LAYER_RE.match(name)
    return int(match.group(1)) if match else None


def closest_names(name: str, valid: Iterable[str], n: int = 3) -> list[str]:
    """The valid hook names most similar to ``name`` (for error messages)."""
    return difflib.get_close_matches(name, list(valid), n=n, cutoff=0.0)


def _unknown(name: str, valid: Sequence[str]) -> HookNameError:
    near = ", ".join(repr(n) for n in closest_names(name, valid))
    return HookNameError(
        f"unknown hook name {name!r}; closest valid names: {near}. See model.hook_names for all of them."
    )


def resolve_names(names: NameFilter, valid: Sequence[str]) -> list[str]:
    """Turn a name filter into the list of matching valid names, in forward order.

    Exact names that do not exist raise :class:`HookNameError` naming the closest valid
    names; a glob pattern (``*``, ``?``, ``[``) that matches nothing raises too.
    """
    if names is None:
        return list(valid)
    if callable(names):
        return [n for n in valid if names(n)]
    if not isinstance(names, str | Iterable):
        raise HookNameError(
            f"names must be a hook name, a glob pattern, a list of them, a predicate or None, got {names!r}"
        )
    patterns = [names] if isinstance(names, str) else list(names)
    wanted: set[str] = set()
    valid_set = set(valid)
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise HookNameError(f"hook names must be strings, got {pattern!r}")
        if any(c in pattern for c in "*?["):
            hits = fnmatch.filter(valid, pattern)
            if not hits:
                raise HookNameError(
                    f"hook name pattern {pattern!r} matches no hook; closest valid names: "
                    + ", ".join(repr(n) for n in closest_names(pattern, valid))
                )
            wanted.update(hits)
        elif pattern in valid_set:
            wanted.add(pattern)
        else:
            raise _unknown(pattern, valid)
    return [n for n in valid if n in wanted]
