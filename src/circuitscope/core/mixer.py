"""The hook points of a state-space mixer layer: ``x + mixer(ln1 x)``, then the MLP if the block has one.

The mixer takes the block's attention slot; its output is named for what it is. Every hook sits on one of
the family's own modules (transformers' torch path: Mamba's ``slow_forward``-style scan, Mamba 2's chunk
scan), so a model with no hooks runs the plain Hugging Face forward.

================================  ==========================================================================
``blocks.L.hook_resid_pre``        input of block L                                     [batch pos d_model]
``blocks.L.ln1.hook_normalized``   the mixer's input after the block's norm             [batch pos d_model]
``blocks.L.mixer.hook_in_proj``    in_proj output: Mamba ``[x | gate]`` [batch pos 2*d_inner]; Mamba 2 / Bamba
                                   ``[gate | x B C | dt]`` [batch pos d_inner + conv_dim + n_ssm_heads]
``blocks.L.mixer.hook_conv``       (Mamba) x after the causal convolution and its activation, the input of
                                   both x_proj and the scan                             [batch pos d_inner]
``blocks.L.mixer.hook_x_proj``     (Mamba) x_proj output ``[dt (low rank) | B | C]``    [batch pos dt_rank + 2*d_state]
``blocks.L.mixer.hook_ssm_out``    (Mamba 2 / Bamba) the scan's output (D skip included), before the gated
                                   RMSNorm                                              [batch pos d_inner]
``blocks.L.mixer.hook_out_proj_in`` the gated SSM output entering out_proj               [batch pos d_inner]
``blocks.L.hook_mixer_out``        what the mixer adds to the residual stream            [batch pos d_model]
``blocks.L.hook_resid_mid``        resid_pre + mixer_out (only when an MLP follows)      [batch pos d_model]
``blocks.L.ln2`` / ``mlp.*`` / ``hook_mlp_out``  the MLP, as in an attention block (Bamba)
``blocks.L.hook_resid_post``       output of block L                                    [batch pos d_model]
================================  ==========================================================================

Left out, because transformers computes them inside functions rather than modules: Mamba 2's convolution
output (it goes straight from ``causal_conv1d_fn`` into the chunk scan), Mamba's full-rank dt (``dt_proj``'s
weight is applied with ``@``, the module is never called) and the SSM state itself (it lives inside the scan
loop; hooking it would mean re-implementing the scan).

``hook_conv`` is read where x_proj receives it; the scan reads the very same tensor, so a rewrite is copied
into it in place (under autograd the rewritten value flows on; a hook that saved the old tensor for its own
backward would see it changed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from circuitscope.core.capabilities import require_attention
from circuitscope.core.config import ModelConfig
from circuitscope.core.wiring import BlockModules, _first, _LayerState, _replace_first, _Site
from circuitscope.errors import UnsupportedAnalysisError
from circuitscope.models.base import Adapter, Paths, resolve_path

if TYPE_CHECKING:
    from circuitscope.core.hook_points import HookPoint
    from circuitscope.core.wiring import Instrumentation

__all__ = ["MixerBlockModules", "build_mixer_block"]

_ATTENTION = frozenset({"attn", "q", "k", "v", "qkv", "o", "attn_out", "attn_out_norm"})
_MLP = frozenset({"ln2", "mlp_in", "mlp_in_linear", "mlp_gate_up", "mlp_down", "mlp_out", "mlp_out_norm"})


class MixerBlockModules(BlockModules):
    """The resolved modules of a mixer layer. Its attention modules do not exist: reading one (``W_Q``, head
    hooks, anything per head) raises :class:`UnsupportedAnalysisError` through ``require_attention``."""

    def __init__(self, block: nn.Module, adapter: Adapter, cfg: ModelConfig, layer: int) -> None:
        # BlockModules.__init__ would resolve the attention modules this block lacks: resolve the rest here
        assert adapter.mixer is not None and adapter.mixer_kind is not None
        self._cfg, self._layer, self.kind = cfg, layer, adapter.mixer_kind
        self.block = block
        self.ln1 = None if adapter.ln1 is None else resolve_path(block, adapter.ln1, "ln1")
        self.mixer = resolve_path(block, adapter.mixer, "mixer")
        self.in_proj = resolve_path(self.mixer, "in_proj", "mixer.in_proj")
        self.out_proj = resolve_path(self.mixer, "out_proj", "mixer.out_proj")
        inner = "x_proj" if self.kind == "selective_scan" else "norm"  # Mamba's dt/B/C projection; Mamba 2's gated norm
        self.inner = resolve_path(self.mixer, inner, f"mixer.{inner}")
        self.has_mlp = adapter.mlp_out is not None
        self.moe = None  # a dense MLP or none (a hybrid with experts, Jamba, is not wired yet)
        if self.has_mlp:

            def get(path: Paths | None, what: str) -> nn.Module | None:
                return None if path is None else resolve_path(block, path, what)

            self.ln2 = get(adapter.ln2, "ln2")
            self.mlp_in = resolve_path(block, adapter.mlp_in, "mlp_in")
            self.mlp_in_linear = get(adapter.mlp_in_linear, "mlp_in_linear")
            self.mlp_gate_up = get(adapter.mlp_gate_up, "mlp_gate_up")
            self.mlp_down = resolve_path(block, adapter.mlp_down, "mlp_down")
            self.mlp_out = resolve_path(block, adapter.mlp_out, "mlp_out")
            self.mlp_out_norm = get(adapter.mlp_out_norm, "mlp_out_norm")

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("_") and name in _ATTENTION:
            require_attention(self._cfg, f"the attention module {name!r} (per-head hooks and weights)", [self._layer])
        if not name.startswith("_") and name in _MLP:
            raise UnsupportedAnalysisError(
                f"{self._cfg.family} blocks have no MLP (each is x + mixer(norm(x))): {name} does not exist; "
                "the mixer's output is blocks.L.hook_mixer_out"
            )
        raise AttributeError(name)


def _conv_site(module: nn.Module, point: HookPoint) -> _Site:
    """x_proj's input, which the scan reads too: a rewrite is copied into that tensor (see the module)."""

    def hook(_m: nn.Module, args: tuple[Any, ...]) -> None:
        x = args[0]
        y = point(x)
        if y is not x:
            x.copy_(y)

    return _Site(lambda: module.register_forward_pre_hook(hook))


def _mixer_out_site(module: nn.Module, mixer_out: HookPoint, resid_mid: HookPoint | None, state: _LayerState) -> _Site:
    """The mixer's output; with an MLP after it, also ``resid_pre + mixer_out`` (the block's own addition)."""

    def hook(_m: nn.Module, _args: Any, output: Any) -> Any:
        out = _first(output)
        a = mixer_out(out) if mixer_out.active else out
        if resid_mid is not None and resid_mid.active and state.resid_pre is not None:
            m = state.resid_pre + a
            m2 = resid_mid(m)
            if m2 is not m:
                a = m2 - state.resid_pre
        return None if a is out else _replace_first(output, a)

    return _Site(lambda: module.register_forward_hook(hook))


def build_mixer_block(inst: Instrumentation, layer: int, mods: MixerBlockModules) -> None:
    """Register the hook points of mixer layer ``layer`` (see the module's table) on ``inst``."""
    pre, P, state = f"blocks.{layer}.", inst._point, inst._states[layer]
    layer_pre = inst._block_input(layer, mods, state)
    p = P(pre + "mixer.hook_in_proj", layer, [])
    inst._deps[p.name] = [inst._output_site(mods.in_proj, p)]
    if mods.kind == "selective_scan":
        p = P(pre + "mixer.hook_conv", layer, [])
        inst._deps[p.name] = [_conv_site(mods.inner, p)]
        p = P(pre + "mixer.hook_x_proj", layer, [])
        inst._deps[p.name] = [inst._output_site(mods.inner, p)]
    else:
        p = P(pre + "mixer.hook_ssm_out", layer, [])
        inst._deps[p.name] = [inst._input_site(mods.inner, p)]
    p = P(pre + "mixer.hook_out_proj_in", layer, [])
    inst._deps[p.name] = [inst._input_site(mods.out_proj, p)]
    mixer_out = P(pre + "hook_mixer_out", layer, [])
    resid_mid = P(pre + "hook_resid_mid", layer, []) if mods.has_mlp else None
    out_site = _mixer_out_site(mods.mixer, mixer_out, resid_mid, state)
    inst._deps[mixer_out.name] = [out_site]
    if resid_mid is not None:
        inst._deps[resid_mid.name] = [layer_pre, out_site]
        inst._build_mlp(layer, mods, layer_pre)
    p = P(pre + "hook_resid_post", layer, [])
    inst._deps[p.name] = [inst._output_site(mods.block, p)]
