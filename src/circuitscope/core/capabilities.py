"""What a model's blocks contain, and the one check behind everything that needs attention heads.

A block is either an *attention layer* (``x + attn(ln1 x)``, then the MLP) or a *mixer layer* of a
state-space model (``x + mixer(ln1 x)``, then the MLP if the family has one: Bamba's mixer layers do, Mamba's
do not). ``ModelConfig.mixer_layers`` says which layers are mixer layers. Residual-stream analyses work on
both kinds through the residual names; per-head ones (head hooks and weights, head ablation, path patching
over heads, head detectors, EAP over heads, the IOI classes) need attention layers, and call
:func:`require_attention` first so that a state-space model gets a clear error instead of a wrong answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal

from circuitscope.core.config import ModelConfig
from circuitscope.errors import HookNameError, UnsupportedAnalysisError

__all__ = [
    "LayerKind",
    "attention_layers",
    "explain_missing_hook",
    "layer_kind",
    "require_attention",
    "sublayer_names",
]

LayerKind = Literal["attention", "mixer"]
"""What sits in a block's first sublayer slot: attention heads or a state-space mixer."""

_RESIDUAL_ANALYSES = (
    "use residual-stream analyses (patching over hook_resid_pre, DLA over cache.decompose_resid(), logit lens)"
)
_ATTENTION_HOOK = re.compile(r"^blocks\.(\d+)\.(attn\.hook_\w+|hook_attn_out)$")
_MLP_HOOK = re.compile(r"^blocks\.(\d+)\.(mlp\.hook_\w+|hook_mlp_out|ln2\.hook_normalized|hook_resid_mid)$")


def layer_kind(cfg: ModelConfig, layer: int) -> LayerKind:
    """``mixer`` for a state-space mixer layer, ``attention`` otherwise."""
    return "mixer" if layer % cfg.n_layers in cfg.mixer_layers else "attention"


def attention_layers(cfg: ModelConfig) -> tuple[int, ...]:
    """The layers that have attention heads (every layer of a transformer, none of a Mamba model)."""
    return tuple(i for i in range(cfg.n_layers) if i not in cfg.mixer_layers)


def sublayer_names(cfg: ModelConfig, layer: int, hook_names: Sequence[str]) -> list[str]:
    """The short names of what block ``layer`` adds to the residual stream, in order.

    ``["attn_out", "mlp_out"]`` for a transformer block, ``["mixer_out", "mlp_out"]`` for a hybrid's mixer
    layer, ``["mixer_out"]`` for a Mamba block; the residual decomposition labels them ``L_<name>``.
    """
    first = "mixer_out" if layer_kind(cfg, layer) == "mixer" else "attn_out"
    has_mlp = f"blocks.{layer}.hook_mlp_out" in hook_names
    return [first, "mlp_out"] if has_mlp else [first]


def _no_attention(cfg: ModelConfig, analysis: str, missing: Sequence[int]) -> str:
    if len(cfg.mixer_layers) == cfg.n_layers:
        return (
            f"{cfg.family} has no attention heads: {analysis} needs attention layers (blocks.L.attn.*); "
            f"{_RESIDUAL_ANALYSES}"
        )
    layers = ", ".join(str(i) for i in missing)
    return (
        f"{cfg.family} layer{'s' if len(missing) > 1 else ''} {layers} {'are' if len(missing) > 1 else 'is a'} "
        f"state-space mixer layer{'s' if len(missing) > 1 else ''} with no attention heads: {analysis} needs "
        f"attention in every layer it covers (the attention layers are {list(attention_layers(cfg))}); restrict it "
        f"to those, or {_RESIDUAL_ANALYSES}"
    )


def require_attention(cfg: ModelConfig, analysis: str, layers: Iterable[int] | None = None) -> None:
    """Raise :class:`UnsupportedAnalysisError` unless every layer in ``layers`` (None: all) has attention heads.

    ``analysis`` names what needs them (``"head ablation"``); the message names the family and says what to
    use instead. Every per-head entry point calls this one check.
    """
    wanted = range(cfg.n_layers) if layers is None else sorted({int(layer) % cfg.n_layers for layer in layers})
    missing = [layer for layer in wanted if layer in cfg.mixer_layers]
    if missing:
        raise UnsupportedAnalysisError(_no_attention(cfg, analysis, missing))


def explain_missing_hook(cfg: ModelConfig, names: object) -> None:
    """For a hook name the model lacks because of what its blocks are, a HookNameError saying so.

    ``blocks.L.attn.hook_z`` on a Mamba model: the layer has no attention heads; ``blocks.L.hook_mlp_out``:
    the block has no MLP. ``names`` is a name or a list of them (anything else is left alone); returns
    quietly for any other name (the caller reports it as unknown if it is).
    """
    if not cfg.mixer_layers:
        return
    for name in [names] if isinstance(names, str) else names if isinstance(names, list | tuple) else []:
        if isinstance(name, str):
            _explain(cfg, name)


def _explain(cfg: ModelConfig, name: str) -> None:
    attention = _ATTENTION_HOOK.match(name)
    if attention and int(attention.group(1)) in cfg.mixer_layers:
        layer = int(attention.group(1))
        raise HookNameError(
            _no_attention(cfg, f"the hook {name!r}", [layer]) + f"; its mixer writes blocks.{layer}.hook_mixer_out"
        )
    mlp = _MLP_HOOK.match(name)
    if mlp and cfg.d_mlp == 0 and int(mlp.group(1)) < cfg.n_layers:
        raise HookNameError(
            f"{cfg.family} blocks have no MLP (each is x + mixer(norm(x))), so there is no {name!r}; "
            f"the block's output is blocks.{mlp.group(1)}.hook_resid_post"
        )
