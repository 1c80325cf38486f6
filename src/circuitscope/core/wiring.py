"""Wiring: the hook points of one model, and the PyTorch hooks that carry them.

Each hook point depends on one or more *sites* (a forward or forward-pre hook on one of
the family's own modules, or the attention core inside the attention function). A site
is installed only while a hook point that needs it is active, so a model with no hooks
runs exactly the plain Hugging Face forward.

The names, shapes and meanings follow TransformerLens's ``HookedTransformer``:

========================================  ===========================================
``hook_embed`` / ``hook_pos_embed``        token / learned position embedding [batch pos d_model]
                                           (``hook_pos_embed`` is [1 pos d_model]: it is shared by the batch)
``blocks.L.hook_resid_pre``                input of block L                   [batch pos d_model]
``blocks.L.ln1.hook_normalized``           attention input after its norm     [batch pos d_model]
``blocks.L.attn.hook_q`` / ``hook_k`` / ``hook_v``  projections, before q/k norm and rotary [batch pos head d_head]
``blocks.L.attn.hook_rot_q`` / ``hook_rot_k``       q, k after q/k norm and rotary  [batch pos head d_head]
``blocks.L.attn.hook_attn_scores``         scaled, softcapped, masked scores  [batch head query_pos key_pos]
``blocks.L.attn.hook_pattern``             softmax of the scores              [batch head query_pos key_pos]
``blocks.L.attn.hook_z``                   pattern @ v, per head              [batch pos head d_head]
``blocks.L.attn.hook_result``              each head's write to the residual  [batch pos head d_model]
``blocks.L.hook_attn_out``                 what attention adds to the residual [batch pos d_model]
``blocks.L.hook_resid_mid``                resid_pre + attn_out               [batch pos d_model]
``blocks.L.ln2.hook_normalized``           MLP input after its norm           [batch pos d_model]
``blocks.L.mlp.hook_pre`` / ``hook_pre_linear``  MLP pre-activation (gate) / linear branch [batch pos d_mlp]
``blocks.L.mlp.hook_post``                 MLP activation, input of its output projection [batch pos d_mlp]
``blocks.L.hook_mlp_out``                  what the MLP adds to the residual  [batch pos d_model]
``blocks.L.hook_resid_post``               output of block L                  [batch pos d_model]
``ln_final.hook_normalized``               final residual after the final norm [batch pos d_model]
========================================  ===========================================

``hook_k``/``hook_v``/``hook_rot_k`` have the model's key/value heads under grouped-query
attention. Under a norm between the output projection and the residual add (Gemma 2/3)
or a post-norm block (BERT), ``hook_result`` pushes each head's output through that norm
with its scale frozen at the value for the whole attention output, so the heads still
add up to ``hook_attn_out``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from circuitscope.core.attention import AttentionCore
from circuitscope.core.config import ModelConfig
from circuitscope.core.hook_points import HookPoint
from circuitscope.core.norms import FrozenNorm, frozen_norm
from circuitscope.models.base import Adapter, resolve_path, try_resolve

__all__ = ["BlockModules", "Instrumentation"]


class BlockModules:
    """The resolved modules of one block."""

    def __init__(self, block: nn.Module, adapter: Adapter) -> None:
        def get(path: str | None, what: str) -> nn.Module | None:
            return None if path is None else resolve_path(block, path, what)

        self.block = block
        self.attn = resolve_path(block, adapter.attn, "attn")
        self.ln1 = get(adapter.ln1, "ln1")
        self.ln2 = get(adapter.ln2, "ln2")
        self.q = get(adapter.q, "q")
        self.k = get(adapter.k, "k")
        self.v = get(adapter.v, "v")
        self.qkv = get(adapter.qkv, "qkv")
        self.o = resolve_path(block, adapter.o, "o")
        self.attn_out = resolve_path(block, adapter.attn_out, "attn_out")
        self.attn_out_norm = get(adapter.attn_out_norm, "attn_out_norm")
        self.mlp_in = resolve_path(block, adapter.mlp_in, "mlp_in")
        self.mlp_in_linear = get(adapter.mlp_in_linear, "mlp_in_linear")
        self.mlp_down = resolve_path(block, adapter.mlp_down, "mlp_down")
        self.mlp_out = resolve_path(block, adapter.mlp_out, "mlp_out")
        self.mlp_out_norm = get(adapter.mlp_out_norm, "mlp_out_norm")


class _LayerState:
    """Tensors one site leaves for a later site of the same forward pass."""

    __slots__ = ("resid_pre", "z")

    def __init__(self) -> None:
        self.resid_pre: torch.Tensor | None = None
        self.z: torch.Tensor | None = None


class _Site:
    """One PyTorch hook on one module, installed while some hook point needs it."""

    __slots__ = ("count", "handle", "install")

    def __init__(self, install: Callable[[], Any]) -> None:
        self.install = install
        self.count = 0
        self.handle: Any = None

    def acquire(self) -> None:
        if self.count == 0:
            self.handle = self.install()
        self.count += 1

    def release(self) -> None:
        self.count -= 1
        if self.count == 0:
            if self.handle is not None:
                self.handle.remove()
            self.handle = None


class _CoreSite(_Site):
    """The attention core is switched, not hooked."""

    __slots__ = ("core",)

    def __init__(self, core: AttentionCore) -> None:
        super().__init__(lambda: None)
        self.core = core

    def acquire(self) -> None:
        self.count += 1
        self.core.refresh()

    def release(self) -> None:
        self.count -= 1
        self.core.refresh()


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _replace_first(output: Any, value: torch.Tensor) -> Any:
    return (value, *output[1:]) if isinstance(output, tuple) else value


class Instrumentation:
    """All hook points of one Hugging Face model, wired onto its modules."""

    def __init__(self, hf_model: nn.Module, adapter: Adapter, cfg: ModelConfig) -> None:
        self.adapter = adapter
        self.cfg = cfg
        config: Any = hf_model.config
        self._text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        self.embed = resolve_path(hf_model, adapter.embed, "embed")
        self.pos_embed = try_resolve(hf_model, adapter.pos_embed)
        self.final_norm = try_resolve(hf_model, adapter.final_norm)
        self.unembed = try_resolve(hf_model, adapter.unembed)
        layers = resolve_path(hf_model, adapter.layers, "layers")
        if not isinstance(layers, nn.ModuleList) or len(layers) != cfg.n_layers:
            raise AttributeError(
                f"adapter {adapter.family!r}: {adapter.layers!r} is not a list of {cfg.n_layers} blocks"
            )
        self.blocks = [BlockModules(block, adapter) for block in layers]
        self.points: dict[str, HookPoint] = {}
        self._deps: dict[str, list[_Site]] = {}
        self._states = [_LayerState() for _ in self.blocks]
        self._build()

    # ------------------------------------------------------------------ registry
    def _point(self, name: str, layer: int | None, sites: list[_Site]) -> HookPoint:
        point = HookPoint(name, layer, self._changed)
        self.points[name] = point
        self._deps[name] = sites
        return point

    def _changed(self, point: HookPoint) -> None:
        for site in self._deps[point.name]:
            if point.active:
                site.acquire()
            else:
                site.release()

    def final_softcap(self) -> float | None:
        """The final logit softcap the adapter declares, read off the config now (None: no cap)."""
        attr = self.adapter.final_softcap_attr
        return None if attr is None else getattr(self._text_config, attr, None)

    def softcap_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """``c * tanh(logits / c)`` under the family's final softcap ``c``; the logits themselves without one."""
        cap = self.final_softcap()
        return torch.tanh(logits / cap) * cap if cap is not None else logits

    def clear_state(self) -> None:
        """Drop tensors kept between sites (called after every forward)."""
        for state in self._states:
            state.resid_pre = None
            state.z = None

    # ------------------------------------------------------------------ sites
    @staticmethod
    def _output_site(module: nn.Module, point: HookPoint) -> _Site:
        def hook(_m: nn.Module, _args: Any, output: Any) -> Any:
            x = _first(output)
            y = point(x)
            return None if y is x else _replace_first(output, y)

        return _Site(lambda: module.register_forward_hook(hook))

    @staticmethod
    def _input_site(module: nn.Module, point: HookPoint) -> _Site:
        def hook(_m: nn.Module, args: Any) -> Any:
            x = args[0]
            y = point(x)
            return None if y is x else (y, *args[1:])

        return _Site(lambda: module.register_forward_pre_hook(hook))

    def _heads_site(self, module: nn.Module, points: list[HookPoint], n_heads: list[int]) -> _Site:
        """q/k/v: [batch pos (head d_head)] projections viewed as [batch pos head d_head]."""
        d_head = self.cfg.d_head
        (point,), (h,) = points, n_heads

        def hook(_m: nn.Module, _args: Any, output: torch.Tensor) -> Any:
            x = output.view(*output.shape[:-1], h, d_head)
            # always hand back the tensor the hook saw, so that gradients reach it (a cache with
            # grad=True, backward hooks) even when the hook left it unchanged
            return point(x).reshape(output.shape)

        return _Site(lambda: module.register_forward_hook(hook))

    def _qkv_site(self, module: nn.Module, q: HookPoint, k: HookPoint, v: HookPoint) -> _Site:
        cfg, layout = self.cfg, self.adapter.qkv_layout
        h, d = cfg.n_heads, cfg.d_head

        def hook(_m: nn.Module, _args: Any, output: torch.Tensor) -> Any:
            lead = output.shape[:-1]
            if layout == "concat":
                parts = [p.view(*lead, h, d) for p in output.split(h * d, dim=-1)]
            else:
                parts = list(output.view(*lead, h, 3 * d).split(d, dim=-1))
            new = [pt(x) if pt.active else x for pt, x in zip((q, k, v), parts, strict=True)]
            if layout == "concat":
                return torch.cat([x.reshape(*lead, h * d) for x in new], dim=-1)
            return torch.cat(new, dim=-1).reshape(output.shape)

        return _Site(lambda: module.register_forward_hook(hook))

    def _layer_pre_site(self, block: nn.Module, point: HookPoint, state: _LayerState) -> _Site:
        def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            x = args[0] if args else kwargs["hidden_states"]
            y = point(x) if point.active else x
            state.resid_pre = y
            if y is x:
                return None
            if args:
                return (y, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": y}

        return _Site(lambda: block.register_forward_pre_hook(hook, with_kwargs=True))

    def _z_site(self, module: nn.Module, point: HookPoint, state: _LayerState) -> _Site:
        h, d = self.cfg.n_heads, self.cfg.d_head

        def hook(_m: nn.Module, args: tuple[Any, ...]) -> Any:
            flat = args[0]
            z = flat.view(*flat.shape[:-1], h, d)
            if not point.active:  # only hook_result needs z here
                state.z = z
                return None
            y = point(z)
            state.z = y
            return (y.reshape(flat.shape), *args[1:])  # the hooked tensor itself flows on (gradients reach it)

        return _Site(lambda: module.register_forward_pre_hook(hook))

    def _attn_out_site(
        self, layer: int, result: HookPoint, attn_out: HookPoint, resid_mid: HookPoint | None, state: _LayerState
    ) -> _Site:
        mods = self.blocks[layer]
        post_norm = self.adapter.residual == "post_norm"

        def hook(_m: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
            out = _first(output)
            resid: torch.Tensor | None = args[1] if post_norm else state.resid_pre
            a = out - resid if post_norm and resid is not None else out
            a0 = a
            if result.active:
                res = self.head_results(layer, state.z, args, resid)
                new = result(res)
                if new is not res:
                    a = a + (new - res).sum(-2)
            if attn_out.active:
                a = attn_out(a)
            if post_norm:
                assert resid is not None
                m = out if a is a0 else resid + a
                if resid_mid is not None and resid_mid.active:
                    m = resid_mid(m)
                return None if m is out else _replace_first(output, m)
            if resid_mid is not None and resid_mid.active and resid is not None:
                m = resid + a
                m2 = resid_mid(m)
                if m2 is not m:
                    a = m2 - resid
            return None if a is out else _replace_first(output, a)

        return _Site(lambda: mods.attn_out.register_forward_hook(hook))

    def _mlp_out_site(self, module: nn.Module, point: HookPoint) -> _Site:
        if self.adapter.residual != "post_norm":
            return self._output_site(module, point)

        def hook(_m: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
            out = _first(output)
            resid = args[1]
            a = out - resid
            b = point(a)
            return None if b is a else _replace_first(output, resid + b)

        return _Site(lambda: module.register_forward_hook(hook))

    # ------------------------------------------------------------------ per-head results
    def frozen(self, module: nn.Module) -> FrozenNorm:
        """The norm's linear parts, read fresh each time (weights may have been edited)."""
        return frozen_norm(module)

    def head_results(
        self, layer: int, z: torch.Tensor | None, args: tuple[Any, ...], resid: torch.Tensor | None
    ) -> torch.Tensor:
        """Each head's write into the residual stream, [batch pos head d_model]."""
        if z is None:
            raise RuntimeError("hook_result needs hook_z's site; the wiring did not run it")
        from circuitscope.core.weights import head_out_weights

        mods = self.blocks[layer]
        w_o, b_o = head_out_weights(mods.o, self.cfg, self.adapter.conv1d)  # [head d_head d_model]
        raw = torch.einsum("bphd,hdm->bphm", z, w_o.to(z.dtype))
        if self.adapter.residual == "post_norm":
            if mods.attn_out_norm is None or resid is None:
                raise AttributeError("a post-norm adapter must name attn_out_norm (the LayerNorm of x + attn)")
            norm = self.frozen(mods.attn_out_norm)
            total = raw.sum(-2) + resid
            if b_o is not None:
                total = total + b_o
            return norm.apply(raw, norm.scale(total).unsqueeze(-2))
        if mods.attn_out_norm is not None:
            norm = self.frozen(mods.attn_out_norm)
            return norm.apply(raw, norm.scale(args[0]).unsqueeze(-2))
        return raw

    # ------------------------------------------------------------------ build
    def _build(self) -> None:
        cfg, ad = self.cfg, self.adapter
        self._point("hook_embed", None, [])
        self._deps["hook_embed"] = [self._output_site(self.embed, self.points["hook_embed"])]
        if self.pos_embed is not None:
            p = self._point("hook_pos_embed", None, [])
            self._deps[p.name] = [self._output_site(self.pos_embed, p)]
        for layer, mods in enumerate(self.blocks):
            self._build_block(layer, mods)
        if self.final_norm is not None:
            p = self._point("ln_final.hook_normalized", None, [])
            self._deps[p.name] = [self._output_site(self.final_norm, p)]
        del cfg, ad

    def _build_block(self, layer: int, mods: BlockModules) -> None:
        cfg, ad = self.cfg, self.adapter
        pre = f"blocks.{layer}."
        state = self._states[layer]
        P = self._point

        resid_pre = P(pre + "hook_resid_pre", layer, [])
        layer_pre = self._layer_pre_site(mods.block, resid_pre, state)
        self._deps[resid_pre.name] = [layer_pre]
        if mods.ln1 is not None:
            p = P(pre + "ln1.hook_normalized", layer, [])
            self._deps[p.name] = [self._output_site(mods.ln1, p)]
        q = P(pre + "attn.hook_q", layer, [])
        k = P(pre + "attn.hook_k", layer, [])
        v = P(pre + "attn.hook_v", layer, [])
        if mods.qkv is not None:
            fused = self._qkv_site(mods.qkv, q, k, v)
            for p in (q, k, v):
                self._deps[p.name] = [fused]
        else:
            assert mods.q is not None and mods.k is not None and mods.v is not None
            for p, m, h in ((q, mods.q, cfg.n_heads), (k, mods.k, cfg.n_kv_heads), (v, mods.v, cfg.n_kv_heads)):
                self._deps[p.name] = [self._heads_site(m, [p], [h])]
        rot_q = P(pre + "attn.hook_rot_q", layer, []) if ad.rotary else None
        rot_k = P(pre + "attn.hook_rot_k", layer, []) if ad.rotary else None
        scores = P(pre + "attn.hook_attn_scores", layer, [])
        pattern = P(pre + "attn.hook_pattern", layer, [])
        core = AttentionCore(rot_q, rot_k, scores, pattern)
        core.attach(mods.attn)
        core_site = _CoreSite(core)
        for p in (rot_q, rot_k, scores, pattern):
            if p is not None:
                self._deps[p.name] = [core_site]
        z = P(pre + "attn.hook_z", layer, [])
        z_site = self._z_site(mods.o, z, state)
        self._deps[z.name] = [z_site]
        result = P(pre + "attn.hook_result", layer, [])
        attn_out = P(pre + "hook_attn_out", layer, [])
        resid_mid = P(pre + "hook_resid_mid", layer, []) if cfg.residual != "parallel" else None
        out_site = self._attn_out_site(layer, result, attn_out, resid_mid, state)
        self._deps[result.name] = [z_site, out_site] + ([layer_pre] if ad.residual == "pre_norm" else [])
        self._deps[attn_out.name] = [out_site]
        if resid_mid is not None:
            self._deps[resid_mid.name] = [layer_pre, out_site] if cfg.residual == "pre_norm" else [out_site]
        if mods.ln2 is not None:
            p = P(pre + "ln2.hook_normalized", layer, [])
            self._deps[p.name] = [self._output_site(mods.ln2, p)]
        p = P(pre + "mlp.hook_pre", layer, [])
        self._deps[p.name] = [self._output_site(mods.mlp_in, p)]
        if mods.mlp_in_linear is not None:
            p = P(pre + "mlp.hook_pre_linear", layer, [])
            self._deps[p.name] = [self._output_site(mods.mlp_in_linear, p)]
        p = P(pre + "mlp.hook_post", layer, [])
        self._deps[p.name] = [self._input_site(mods.mlp_down, p)]
        p = P(pre + "hook_mlp_out", layer, [])
        self._deps[p.name] = [self._mlp_out_site(mods.mlp_out, p)]
        p = P(pre + "hook_resid_post", layer, [])
        self._deps[p.name] = [self._output_site(mods.block, p)]
