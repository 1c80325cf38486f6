"""Weight views in TransformerLens's shapes, read from the Hugging Face weights.

Attention, per layer: ``W_Q`` is ``[head, d_model, d_head]`` (``q = x @ W_Q[h] + b_Q[h]``),
``W_K``/``W_V`` the same with the model's key/value heads, ``W_O`` is
``[head, d_head, d_model]`` (``out = sum_h z[h] @ W_O[h] + b_O``). MLP, per layer:
``W_in`` is ``[d_model, d_mlp]`` (``hook_pre = x @ W_in + b_in``; under a gated MLP that is
the linear branch ``hook_pre_linear`` and ``hook_pre = x @ W_gate``), ``W_out`` is
``[d_mlp, d_model]`` (``out = hook_post @ W_out + b_out``). Conv1D storage ([in, out], GPT-2)
and ``nn.Linear``'s [out, in] give the same shapes. These are views of the weights as
loaded: no folding or centering is applied.

:class:`WeightViews` puts them on :class:`~circuitscope.core.hooked_model.HookedModel` as
``model.W_Q``, ``model.W_in``, ... (stacked over layers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal, overload

import torch
from jaxtyping import Float
from torch import nn

from circuitscope.core.config import ModelConfig
from circuitscope.errors import ShapeError

if TYPE_CHECKING:
    from circuitscope.core.wiring import BlockModules, Instrumentation
    from circuitscope.models.base import Adapter

__all__ = [
    "MLPPart",
    "MLPWeights",
    "WeightViews",
    "head_in_weights",
    "head_out_weights",
    "mlp_weights",
    "stacked_mlp",
]

MLPPart = Literal["W_in", "b_in", "W_out", "b_out", "W_gate"]
"""One of the :class:`MLPWeights` fields."""


def _matrix(module: nn.Module, conv1d: bool) -> torch.Tensor:
    """The weight as [d_in, d_out] whatever the storage."""
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    return weight if conv1d else weight.T


def _bias(module: nn.Module) -> torch.Tensor | None:
    bias = getattr(module, "bias", None)
    return bias if isinstance(bias, torch.Tensor) else None


def head_out_weights(
    o: nn.Module, cfg: ModelConfig, conv1d: bool
) -> tuple[Float[torch.Tensor, "head d_head d_model"], Float[torch.Tensor, " d_model"] | None]:
    """``W_O`` and ``b_O`` of one layer's output projection (times the residual multiplier, where one scales it)."""
    w = _matrix(o, conv1d)  # [head*d_head, d_model]
    b = _bias(o)
    if cfg.residual_multiplier != 1.0:  # what the heads add to the stream (Granite): scaled copies
        w, b = w * cfg.residual_multiplier, None if b is None else b * cfg.residual_multiplier
    return w.reshape(cfg.n_heads, cfg.d_head, w.shape[-1]), b


def head_in_weights(
    q: nn.Module | None,
    k: nn.Module | None,
    v: nn.Module | None,
    qkv: nn.Module | None,
    layout: str,
    cfg: ModelConfig,
    conv1d: bool,
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """``[(W_Q, b_Q), (W_K, b_K), (W_V, b_V)]`` with W as [head, d_model, d_head], b as [head, d_head]."""
    h, kv, d = cfg.n_heads, cfg.n_kv_heads, cfg.d_head
    if qkv is None:
        assert q is not None and k is not None and v is not None
        out = []
        for mod, n in ((q, h), (k, kv), (v, kv)):
            w = _matrix(mod, conv1d)  # [d_model, n*d]
            b = _bias(mod)
            out.append((w.reshape(w.shape[0], n, d).permute(1, 0, 2), None if b is None else b.reshape(n, d)))
        return out
    w = _matrix(qkv, conv1d)  # [d_model, (h + 2 kv)*d]
    b = _bias(qkv)
    d_model = w.shape[0]
    if layout == "concat":  # [q | k | v] split by size: q has h heads, k and v kv heads each
        sizes = [n * d for n in (h, kv, kv)]
        parts = zip(w.split(sizes, dim=-1), (None,) * 3 if b is None else b.split(sizes), (h, kv, kv), strict=True)
        return [
            (wi.reshape(d_model, n, d).permute(1, 0, 2), None if bi is None else bi.reshape(n, d))
            for wi, bi, n in parts
        ]
    if layout == "grouped":  # [kv_head, (its h/kv queries, k, v), d_head] (Falcon)
        per = h // kv
        w4 = w.reshape(d_model, kv, per + 2, d)
        b3 = None if b is None else b.reshape(kv, per + 2, d)
        return [
            (w4[:, :, :per].reshape(d_model, h, d).permute(1, 0, 2), None if b3 is None else b3[:, :per].reshape(h, d)),
            (w4[:, :, per].permute(1, 0, 2), None if b3 is None else b3[:, per]),
            (w4[:, :, per + 1].permute(1, 0, 2), None if b3 is None else b3[:, per + 1]),
        ]
    else:  # per_head: output index = head*(3*d) + which*d + i
        ws = w.reshape(d_model, h, 3, d).permute(2, 1, 0, 3)
        bs = None if b is None else b.reshape(h, 3, d).permute(1, 0, 2)
    return [(ws[i], None if bs is None else bs[i]) for i in range(3)]


@dataclass(frozen=True)
class MLPWeights:
    """One block's MLP weights in TransformerLens's shapes (views of the stored weights)."""

    W_in: Float[torch.Tensor, "d_model d_mlp"]
    """Input projection: ``hook_pre = x @ W_in + b_in``; under a gated MLP the linear branch, ``hook_pre_linear``."""
    b_in: Float[torch.Tensor, " d_mlp"]
    """Its bias (zeros where the family has none)."""
    W_out: Float[torch.Tensor, "d_mlp d_model"]
    """Output projection: ``hook_post @ W_out + b_out`` is what the MLP writes (before any norm after it)."""
    b_out: Float[torch.Tensor, " d_model"]
    """Its bias (zeros where the family has none)."""
    W_gate: Float[torch.Tensor, "d_model d_mlp"] | None
    """Gate projection of a gated MLP: ``hook_pre = x @ W_gate``; None for an ungated MLP."""


def _bias_or_zeros(module: nn.Module, weight: torch.Tensor, width: int) -> torch.Tensor:
    bias = _bias(module)
    return bias if bias is not None else torch.zeros(width, dtype=weight.dtype, device=weight.device)


def mlp_weights(mods: BlockModules, conv1d: bool, out_scale: float = 1.0) -> MLPWeights:
    """The MLP weights of one block's resolved modules (a fused [gate | up] projection sliced in halves).

    ``out_scale``: the residual multiplier of a family that scales the MLP's output before the residual add
    (Granite); ``W_out``/``b_out`` then include it (copies), so that they give ``hook_mlp_out``.
    """
    if getattr(mods, "moe", None) is not None:
        raise ShapeError(
            "this block's MLP is a mixture of experts: it has no single W_in/W_out; read the experts' outputs "
            "from mlp.hook_expert_out (see docs/experts.md)"
        )
    assert mods.mlp_in is not None and mods.mlp_down is not None  # a dense MLP block
    w_out = _matrix(mods.mlp_down, conv1d)  # [d_mlp, d_model]
    b_out = _bias_or_zeros(mods.mlp_down, w_out, w_out.shape[-1])
    if out_scale != 1.0:
        w_out, b_out = w_out * out_scale, b_out * out_scale
    if mods.mlp_gate_up is not None:
        w_gate, w_in = _matrix(mods.mlp_gate_up, conv1d).chunk(2, dim=-1)  # [d_model, 2*d_mlp] -> halves
        bias = _bias_or_zeros(mods.mlp_gate_up, w_in, 2 * w_in.shape[-1])
        return MLPWeights(W_in=w_in, b_in=bias.chunk(2)[1], W_out=w_out, b_out=b_out, W_gate=w_gate)
    gated = mods.mlp_in_linear is not None
    up = mods.mlp_in_linear if mods.mlp_in_linear is not None else mods.mlp_in
    w_in = _matrix(up, conv1d)  # [d_model, d_mlp]
    return MLPWeights(
        W_in=w_in,
        b_in=_bias_or_zeros(up, w_in, w_in.shape[-1]),
        W_out=w_out,
        b_out=b_out,
        W_gate=_matrix(mods.mlp_in, conv1d) if gated else None,
    )


def stacked_mlp(
    blocks: Sequence[BlockModules], conv1d: bool, part: MLPPart, family: str, out_scale: float = 1.0
) -> torch.Tensor:
    """``part`` of every block's MLP stacked along a leading layer axis (``out_scale``: see :func:`mlp_weights`)."""
    rows = [getattr(mlp_weights(b, conv1d, out_scale), part) for b in blocks]
    if any(r is None for r in rows):
        raise ShapeError(f"the {family} family's MLP is not gated: it has no {part}")
    return torch.stack(rows)


def _stored_weight(module: nn.Module | None, missing: str) -> torch.Tensor:
    """``module.weight`` as stored; a ShapeError saying ``missing`` when the model has no such module."""
    if module is None:
        raise ShapeError(missing)
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    return weight


def _stacked_heads_in(model: WeightViews, which: int, bias: bool) -> torch.Tensor:
    """Q (0), K (1) or V (2) weights [layer, head, d_model, d_head], or their biases [layer, head, d_head]."""
    ad, cfg = model.adapter, model.cfg
    rows = []
    for b in model.wiring.blocks:
        w, bb = head_in_weights(b.q, b.k, b.v, b.qkv, ad.qkv_layout, cfg, ad.conv1d)[which]
        if bias:
            rows.append(bb if bb is not None else torch.zeros(w.shape[0], cfg.d_head, dtype=w.dtype, device=w.device))
        else:
            rows.append(w)
    return torch.stack(rows)


def _stacked_mlp(model: WeightViews, part: MLPPart) -> torch.Tensor:
    cfg = model.cfg
    return stacked_mlp(model.wiring.blocks, model.adapter.conv1d, part, cfg.family, cfg.residual_multiplier)


class _View:
    """A read-only weight view computed from the model on each access (a typed ``property``)."""

    def __init__(self, compute: Callable[[WeightViews], torch.Tensor]) -> None:
        self.compute = compute

    @overload
    def __get__(self, model: None, owner: type | None = None) -> _View: ...
    @overload
    def __get__(self, model: WeightViews, owner: type | None = None) -> torch.Tensor: ...
    def __get__(self, model: WeightViews | None, owner: type | None = None) -> torch.Tensor | _View:
        return self if model is None else self.compute(model)


class WeightViews:
    """The weight views of a hooked model, in TransformerLens's names and shapes (see the module).

    A mixin of :class:`~circuitscope.core.hooked_model.HookedModel`: it reads the model's resolved
    modules (``wiring``), its ``cfg`` and its ``adapter``.
    """

    if TYPE_CHECKING:
        wiring: Instrumentation
        cfg: ModelConfig
        adapter: Adapter

        def check_layer_head(self, layer: int, head: int | None = None) -> None: ...

    @property
    def W_E(self) -> Float[torch.Tensor, "d_vocab d_model"]:
        """Token embedding matrix as stored (Gemma's sqrt(d_model) scale is applied in its forward, not here)."""
        return _stored_weight(self.wiring.embed, "")

    @property
    def W_pos(self) -> Float[torch.Tensor, "n_ctx d_model"]:
        """Learned position embeddings, row ``i`` for position ``i`` (rows the family keeps before 0 dropped)."""
        weight = _stored_weight(
            self.wiring.pos_embed, f"the {self.cfg.family} family has no learned position embedding"
        )
        return weight[self.adapter.pos_embed_offset :]

    @property
    def W_U(self) -> Float[torch.Tensor, "d_model d_vocab"]:
        return _stored_weight(self.wiring.unembed, "this model has no unembedding (an encoder without an LM head)").T

    W_Q, W_K, W_V = (_View(partial(_stacked_heads_in, which=i, bias=False)) for i in range(3))
    """[layer, head, d_model, d_head] (``W_K``, ``W_V`` over the key/value heads): ``q = x @ W_Q[l, h] + b_Q[l, h]``."""
    b_Q, b_K, b_V = (_View(partial(_stacked_heads_in, which=i, bias=True)) for i in range(3))  # noqa: N815 (TL names)
    """[layer, head, d_head] (over the key/value heads for K and V); zeros where the family has no bias."""

    @property
    def W_O(self) -> Float[torch.Tensor, "layer head d_head d_model"]:
        return torch.stack([head_out_weights(b.o, self.cfg, self.adapter.conv1d)[0] for b in self.wiring.blocks])

    @property
    def b_O(self) -> Float[torch.Tensor, "layer d_model"]:
        """Output-projection bias (zeros where the family has none)."""
        rows = []
        for b in self.wiring.blocks:
            w, bias = head_out_weights(b.o, self.cfg, self.adapter.conv1d)
            rows.append(bias if bias is not None else torch.zeros(w.shape[-1], dtype=w.dtype, device=w.device))
        return torch.stack(rows)

    def mlp_weights(self, layer: int) -> MLPWeights:
        """One layer's MLP weights (``W_in``, ``b_in``, ``W_out``, ``b_out``, ``W_gate``), without stacking."""
        self.check_layer_head(layer)
        return mlp_weights(self.wiring.blocks[layer], self.adapter.conv1d, self.cfg.residual_multiplier)

    W_in, b_in, W_gate, W_out, b_out = (
        _View(partial(_stacked_mlp, part=part)) for part in ("W_in", "b_in", "W_gate", "W_out", "b_out")
    )
    """Every layer's :class:`MLPWeights` stacked: ``W_in`` [layer, d_model, d_mlp] (``hook_pre = x @ W_in + b_in``,
    ``hook_pre_linear`` under a gated MLP), ``W_gate`` (``hook_pre = x @ W_gate``; a ShapeError for an ungated MLP),
    ``W_out`` [layer, d_mlp, d_model] (``hook_post @ W_out + b_out``); biases are zeros where the family has none."""
