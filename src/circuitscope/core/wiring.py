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

from typing import Any

import torch
from torch import nn

from circuitscope.core import scales
from circuitscope.core.attention import AttentionCore
from circuitscope.core.config import ModelConfig
from circuitscope.core.head_products import HeadProducts, summed_output_site
from circuitscope.core.hook_points import HookPoint
from circuitscope.core.moe import moe_modules, moe_sites
from circuitscope.core.norms import FrozenNorm, frozen_norm
from circuitscope.core.own_attention import rerouting

# the sites under their names in this module (core/mixer.py and others import them from here)
from circuitscope.core.sites import CoreSite as _CoreSite
from circuitscope.core.sites import LayerState as _LayerState
from circuitscope.core.sites import Site as _Site
from circuitscope.core.sites import first as _first
from circuitscope.core.sites import replace_first as _replace_first
from circuitscope.models.base import Adapter, Paths, resolve_path, try_resolve

__all__ = ["BlockModules", "Instrumentation"]


class BlockModules:
    """The resolved modules of one block."""

    def __init__(self, block: nn.Module, adapter: Adapter, residual: str, text_config: Any = None) -> None:
        def get(path: Paths | None, what: str) -> nn.Module | None:
            return None if path is None else resolve_path(block, path, what)

        self.block = block
        self.attn = resolve_path(block, adapter.attn, "attn")
        self.ln1 = get(adapter.ln1, "ln1")
        # under the parallel residual a missing ln2 means ln1 feeds both sublayers (see Adapter.ln2)
        self.ln2 = try_resolve(block, adapter.ln2) if residual == "parallel" else get(adapter.ln2, "ln2")
        self.q = get(adapter.q, "q")
        self.k = get(adapter.k, "k")
        self.v = get(adapter.v, "v")
        self.qkv = get(adapter.qkv, "qkv")
        self.o = resolve_path(block, adapter.o, "o")
        self.attn_out = resolve_path(block, adapter.attn_out, "attn_out")
        self.attn_out_norm = get(adapter.attn_out_norm, "attn_out_norm")
        self.moe = moe_modules(block, adapter.experts, text_config)  # None: a dense MLP block
        dense = self.moe is None
        self.mlp_in = resolve_path(block, adapter.mlp_in, "mlp_in") if dense else None
        self.mlp_in_linear = get(adapter.mlp_in_linear, "mlp_in_linear") if dense else None
        self.mlp_gate_up = get(adapter.mlp_gate_up, "mlp_gate_up") if dense else None
        self.mlp_down = resolve_path(block, adapter.mlp_down, "mlp_down") if dense else None
        self.mlp_out = resolve_path(block, adapter.mlp_out, "mlp_out")
        self.mlp_out_norm = get(adapter.mlp_out_norm, "mlp_out_norm")


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
        self.unembed_head = try_resolve(hf_model, adapter.unembed_head)  # nonlinear, before unembed; or None
        layers = resolve_path(hf_model, adapter.layers, "layers")
        if not isinstance(layers, nn.ModuleList) or len(layers) != cfg.n_layers:
            raise AttributeError(
                f"adapter {adapter.family!r}: {adapter.layers!r} is not a list of {cfg.n_layers} blocks"
            )
        from circuitscope.core.mixer import MixerBlockModules  # a mixer layer's modules (core/mixer.py)

        self.blocks = [
            MixerBlockModules(block, adapter, cfg, i)
            if i in cfg.mixer_layers
            else BlockModules(block, adapter, cfg.residual, self._text_config)
            for i, block in enumerate(layers)
        ]
        self.points: dict[str, HookPoint] = {}
        self._deps: dict[str, list[_Site]] = {}
        self._states = [_LayerState() for _ in self.blocks]
        self._products = [HeadProducts() for _ in self.blocks]  # hook_result's per-head products (core/head_products)
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
        return scales.final_softcap(self.adapter, self._text_config)

    def logit_factor(self) -> float:
        """The linear factor on the unembedded logits (Cohere's ``logit_scale``, one over Granite's
        ``logits_scaling``), read off the config now; 1.0 for none. Direct attributions multiply by it."""
        return scales.logit_factor(self.adapter, self._text_config)

    def softcap_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """The family's final logit transform after the unembedding (core/scales.py): the logit scale, then the
        softcap ``c * tanh(logits / c)``; the logits themselves for a family with neither."""
        return scales.finish_logits(self.adapter, self._text_config, logits)

    def clear_state(self) -> None:
        """Drop tensors kept between sites (called after every forward)."""
        for state in self._states:
            state.resid_pre = None
            state.z = None
            state.mlp_in = None
        for products in self._products:
            products.raw = None

    # ------------------------------------------------------------------ sites
    @staticmethod
    def _call(point: HookPoint, x: torch.Tensor, flat: _LayerState | None) -> torch.Tensor:
        """``point(x)``; for a block that flattens positions (``flat``), on x viewed as [batch pos width]."""
        if flat is None:
            return point(x)
        assert flat.resid_pre is not None, "the block's input site runs before its MLP"
        shaped = x.view(*flat.resid_pre.shape[:-1], x.shape[-1])
        return point(shaped).reshape(x.shape)  # the hooked tensor itself flows on (gradients reach it)

    @classmethod
    def _output_site(
        cls, module: nn.Module, point: HookPoint, flat: _LayerState | None = None, scale: float = 1.0
    ) -> _Site:
        """``scale``: the model multiplies this output by a constant before using it (Granite); the hook sees
        the product (see core/scales.py)."""

        def hook(_m: nn.Module, _args: Any, output: Any) -> Any:
            x = _first(output)
            if scale == 1.0:
                y = cls._call(point, x, flat)
            else:
                scaled = x * scale
                y = scales.unscale(x, scaled, cls._call(point, scaled, flat), scale)
            return None if y is x else _replace_first(output, y)

        return _Site(lambda: module.register_forward_hook(hook))

    @classmethod
    def _input_site(cls, module: nn.Module, point: HookPoint, flat: _LayerState | None = None) -> _Site:
        def hook(_m: nn.Module, args: Any) -> Any:
            x = args[0]
            y = cls._call(point, x, flat)
            return None if y is x else (y, *args[1:])

        return _Site(lambda: module.register_forward_pre_hook(hook))

    def _gate_up_site(
        self, module: nn.Module, pre: HookPoint, pre_linear: HookPoint, flat: _LayerState | None
    ) -> _Site:
        """A fused [activated | linear] projection: its halves are ``mlp.hook_pre`` and ``mlp.hook_pre_linear``."""

        def hook(_m: nn.Module, _args: Any, output: torch.Tensor) -> Any:
            gate, linear = output.chunk(2, dim=-1)
            gate = self._call(pre, gate, flat) if pre.active else gate
            linear = self._call(pre_linear, linear, flat) if pre_linear.active else linear
            return torch.cat([gate, linear], dim=-1)

        return _Site(lambda: module.register_forward_hook(hook))

    def _heads_site(self, module: nn.Module, points: list[HookPoint], n_heads: list[int]) -> _Site:
        """q/k/v: [batch pos (head d_head)] projections viewed as [batch pos head d_head]."""
        d_head, in_place = self.cfg.d_head, self.adapter.qkv_edited_in_place
        (point,), (h,) = points, n_heads

        def hook(_m: nn.Module, _args: Any, output: torch.Tensor) -> Any:
            x = output.view(*output.shape[:-1], h, d_head)
            # always hand back the tensor the hook saw, so that gradients reach it (a cache with
            # grad=True, backward hooks) even when the hook left it unchanged
            y = point(x).reshape(output.shape)
            return y.clone() if in_place else y  # an attention that edits it in place edits a copy

        return _Site(lambda: module.register_forward_hook(hook))

    def _qkv_site(self, module: nn.Module, q: HookPoint, k: HookPoint, v: HookPoint) -> _Site:
        cfg, layout = self.cfg, self.adapter.qkv_layout
        h, d = cfg.n_heads, cfg.d_head
        heads = (cfg.n_heads, cfg.n_kv_heads, cfg.n_kv_heads)  # concat: [q | k | v] by size, so GQA splits too
        kv, per = cfg.n_kv_heads, cfg.n_heads // cfg.n_kv_heads  # grouped: per query heads to each kv head

        def hook(_m: nn.Module, _args: Any, output: torch.Tensor) -> Any:
            lead = output.shape[:-1]
            if layout == "concat":
                chunks = output.split([n * d for n in heads], dim=-1)
                parts = [p.view(*lead, n, d) for p, n in zip(chunks, heads, strict=True)]
            elif layout == "grouped":  # [kv_head, (its queries, k, v), d_head]
                g = output.view(*lead, kv, per + 2, d)
                parts = [g[..., :per, :].reshape(*lead, h, d), g[..., per, :], g[..., per + 1, :]]
            else:
                parts = list(output.view(*lead, h, 3 * d).split(d, dim=-1))
            new = [pt(x) if pt.active else x for pt, x in zip((q, k, v), parts, strict=True)]
            if layout == "concat":
                return torch.cat([x.reshape(*lead, n * d) for x, n in zip(new, heads, strict=True)], dim=-1)
            if layout == "grouped":
                nq, nk, nv = new
                grouped = [nq.reshape(*lead, kv, per, d), nk.unsqueeze(-2), nv.unsqueeze(-2)]
                return torch.cat(grouped, dim=-2).reshape(output.shape)
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
        pair = post_norm and self.adapter.post_norm_input == "pair"  # else the norm got x + s: x is the block input

        k = self.cfg.residual_multiplier  # Granite: what enters the stream is out * k (core/scales.py)

        def hook(_m: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
            out = _first(output)
            resid: torch.Tensor | None = args[1] if pair else state.resid_pre
            a = out - resid if post_norm and resid is not None else out if k == 1.0 else out * k
            a0 = a
            if result.active:
                res = self.head_results(layer, self._products[layer].raw, args, resid)
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
            if k != 1.0:
                a = scales.unscale(out, a0, a, k)
            return None if a is out else _replace_first(output, a)

        return _Site(lambda: mods.attn_out.register_forward_hook(hook))

    def _mlp_out_site(self, module: nn.Module, point: HookPoint, summed: _LayerState | None = None) -> _Site:
        """``summed``: a post-norm block whose norm gets x + s, x being the MLP's input the state recorded."""
        if self.adapter.mlp_out_in_place:  # the block then adds to this tensor in place: hand a copy on
            return _Site(
                lambda: module.register_forward_hook(
                    lambda _m, _a, out: _replace_first(out, point(_first(out)).clone())
                )
            )
        if self.adapter.residual != "post_norm":
            return self._output_site(module, point, scale=self.cfg.residual_multiplier)

        def hook(_m: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
            out = _first(output)
            resid = args[1] if summed is None else summed.mlp_in
            assert resid is not None, "the MLP's input site runs before its output norm"
            a = out - resid
            b = point(a)
            return None if b is a else _replace_first(output, resid + b)

        return _Site(lambda: module.register_forward_hook(hook))

    @staticmethod
    def _mlp_input_site(module: nn.Module, state: _LayerState) -> _Site:
        """Records the MLP's input (the residual a post-norm block summing before its norm adds the MLP to)."""

        def hook(_m: nn.Module, args: tuple[Any, ...]) -> None:
            state.mlp_in = args[0]

        return _Site(lambda: module.register_forward_pre_hook(hook))

    # ------------------------------------------------------------------ per-head results
    def frozen(self, module: nn.Module) -> FrozenNorm:
        """The norm's linear parts, read fresh each time (weights may have been edited)."""
        return frozen_norm(module)

    def head_results(
        self, layer: int, raw: torch.Tensor | None, args: tuple[Any, ...], resid: torch.Tensor | None
    ) -> torch.Tensor:
        """Each head's write into the residual stream, [batch pos head d_model], from its product through
        ``W_O`` (``raw``, which the output projection's shadowing forward computed: core/head_products.py)."""
        if raw is None:
            raise RuntimeError("hook_result needs the per-head products' site; the wiring did not run it")
        mods = self.blocks[layer]
        if self.adapter.residual == "post_norm":
            if mods.attn_out_norm is None or resid is None:
                raise AttributeError("a post-norm adapter must name attn_out_norm (the LayerNorm of x + attn)")
            norm = self.frozen(mods.attn_out_norm)
            from circuitscope.core.weights import head_out_weights

            b_o = head_out_weights(mods.o, self.cfg, self.adapter.conv1d)[1]
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
        self._deps["hook_embed"] = [
            self._output_site(self.embed, self.points["hook_embed"], scale=cfg.embed_multiplier)
        ]
        if self.pos_embed is not None:
            p = self._point("hook_pos_embed", None, [])
            self._deps[p.name] = [self._output_site(self.pos_embed, p)]
        from circuitscope.core.mixer import MixerBlockModules, build_mixer_block

        for layer, mods in enumerate(self.blocks):
            if isinstance(mods, MixerBlockModules):  # a state-space mixer layer (core/mixer.py)
                build_mixer_block(self, layer, mods)
            else:
                self._build_block(layer, mods)
        if self.final_norm is not None:
            p = self._point("ln_final.hook_normalized", None, [])
            self._deps[p.name] = [self._output_site(self.final_norm, p)]
        del cfg, ad

    def _block_input(self, layer: int, mods: BlockModules, state: _LayerState) -> _Site:
        """``blocks.L.hook_resid_pre`` and ``ln1.hook_normalized`` (attention and mixer layers alike); returns the
        site reading the block's input, which the sublayer outputs depend on too."""
        pre = f"blocks.{layer}."
        resid_pre = self._point(pre + "hook_resid_pre", layer, [])
        layer_pre = self._layer_pre_site(mods.block, resid_pre, state)
        self._deps[resid_pre.name] = [layer_pre]
        if mods.ln1 is not None:
            p = self._point(pre + "ln1.hook_normalized", layer, [])
            self._deps[p.name] = [self._output_site(mods.ln1, p)]
        return layer_pre

    def _build_block(self, layer: int, mods: BlockModules) -> None:
        cfg, ad = self.cfg, self.adapter
        pre = f"blocks.{layer}."
        state = self._states[layer]
        P = self._point

        layer_pre = self._block_input(layer, mods, state)
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
        core_site = _CoreSite(core, rerouting(mods.attn, ad, core))
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
        summed = ad.residual == "post_norm" and ad.post_norm_input == "sum"  # the post-norm reads the block input
        products = summed_output_site(mods.o, cfg, ad.conv1d, self._products[layer])  # the heads' sum is o's output
        self._deps[result.name] = [products, out_site] + ([layer_pre] if ad.residual == "pre_norm" or summed else [])
        self._deps[attn_out.name] = [out_site] + ([layer_pre] if summed else [])
        if resid_mid is not None:
            self._deps[resid_mid.name] = [layer_pre, out_site] if cfg.residual == "pre_norm" or summed else [out_site]
        self._build_mlp(layer, mods, layer_pre)
        p = P(pre + "hook_resid_post", layer, [])
        self._deps[p.name] = [self._output_site(mods.block, p)]

    def _build_mlp(self, layer: int, mods: BlockModules, layer_pre: _Site) -> None:
        """``ln2``, the ``mlp.*`` hooks and ``hook_mlp_out`` of one block."""
        pre, P = f"blocks.{layer}.", self._point
        # a block that flattens positions for its MLP: each site needs the block's input for [batch pos]
        flat, extra = (self._states[layer], [layer_pre]) if self.adapter.mlp_flat else (None, [])
        if mods.ln2 is not None:
            p = P(pre + "ln2.hook_normalized", layer, [])
            self._deps[p.name] = [self._output_site(mods.ln2, p, flat), *extra]
        if mods.moe is not None:  # a mixture-of-experts block: the expert hooks instead of mlp.hook_pre/post
            for needed, install in moe_sites(mods.moe, lambda name: P(pre + name, layer, [])):
                site = _Site(install)
                for point in needed:
                    self._deps[point.name].append(site)
            p = P(pre + "hook_mlp_out", layer, [])
            self._deps[p.name] = [self._mlp_out_site(mods.mlp_out, p)]
            return
        assert mods.mlp_in is not None and mods.mlp_down is not None  # a dense MLP block
        hook_pre = P(pre + "mlp.hook_pre", layer, [])
        if mods.mlp_gate_up is not None:
            linear = P(pre + "mlp.hook_pre_linear", layer, [])
            fused = self._gate_up_site(mods.mlp_gate_up, hook_pre, linear, flat)
            self._deps[hook_pre.name] = self._deps[linear.name] = [fused, *extra]
        else:
            self._deps[hook_pre.name] = [self._output_site(mods.mlp_in, hook_pre, flat), *extra]
        if mods.mlp_in_linear is not None:
            p = P(pre + "mlp.hook_pre_linear", layer, [])
            self._deps[p.name] = [self._output_site(mods.mlp_in_linear, p, flat), *extra]
        p = P(pre + "mlp.hook_post", layer, [])
        self._deps[p.name] = [self._input_site(mods.mlp_down, p, flat), *extra]
        p = P(pre + "hook_mlp_out", layer, [])
        if self.adapter.mlp_flat:
            self._deps[p.name] = [self._output_site(mods.mlp_out, p, flat, self.cfg.residual_multiplier), layer_pre]
        elif self.adapter.residual == "post_norm" and self.adapter.post_norm_input == "sum":
            state = self._states[layer]  # the norm gets x + s: x is the MLP's input, recorded where it enters
            assert mods.mlp_in is not None  # a dense MLP (a post-norm mixture of experts is not wired)
            self._deps[p.name] = [self._mlp_out_site(mods.mlp_out, p, state), self._mlp_input_site(mods.mlp_in, state)]
        else:
            self._deps[p.name] = [self._mlp_out_site(mods.mlp_out, p)]
