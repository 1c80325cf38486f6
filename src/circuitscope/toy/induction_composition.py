"""Composition measured on activations: how much of a head's query, key and value input each earlier head wrote.

The weight-based composition scores (:mod:`circuitscope.analysis.composition`) say which heads *could*
compose; this measures which do, on real inputs. The residual stream entering block ``L`` is split
into its parts (the token and position embeddings, every earlier head's output, and what is left:
output biases), each part is pushed through block ``L``'s LayerNorm with the scale of the whole
stream frozen (:meth:`~circuitscope.core.cache.ActivationCache.apply_ln_to_stack`), then through head
``h``'s ``W_Q``, ``W_K`` or ``W_V``. The input's own biases (the norm's and the projection's) form one
more part, so the parts add up to the head's actual query (key, value) vectors. Each part's share is

    share_c = sum_{batch, pos} <part_c, total> / sum_{batch, pos} ||total||^2

the fraction of the input's squared norm along the input itself that comes from part ``c``; the
shares of a head add up to 1 (a share is negative when the part points against the rest).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float

from circuitscope.core.cache import Stack
from circuitscope.core.hooked_model import HookedModel

__all__ = ["ActivationComposition", "activation_composition", "head_input_parts"]

_MODES = ("q", "k", "v")


@dataclass(frozen=True)
class ActivationComposition:
    """Shares of every later head's query, key and value input, by the part of the residual stream it came from."""

    labels: list[str]
    """The parts: ``embed``, ``pos_embed`` (if the model has one), ``L0H0``, ``L0H1``, ..., ``rest`` (output
    biases), ``bias`` (the norm's and the projection's biases)."""
    q: Float[torch.Tensor, "part layer head"]
    """Share of head (layer, head)'s query input from each part (NaN for heads of a later layer than the head)."""
    k: Float[torch.Tensor, "part layer head"]
    """The same for the key input."""
    v: Float[torch.Tensor, "part layer head"]
    """The same for the value input."""

    def share(self, mode: str, source: str, layer: int, head: int) -> float:
        """The share of head (layer, head)'s ``mode`` input (``q``, ``k``, ``v``) that part ``source`` wrote."""
        if mode not in _MODES:
            raise ValueError(f"mode must be 'q', 'k' or 'v', got {mode!r}")
        if source not in self.labels:
            raise KeyError(f"no part {source!r}; the parts are {self.labels}")
        return float(getattr(self, mode)[self.labels.index(source), layer, head])

    def heads_share(self, mode: str) -> Float[torch.Tensor, "layer_a head_a layer_b head_b"]:
        """Shares from head outputs only, as [layer_a, head_a, layer_b, head_b] (like composition scores)."""
        grid = getattr(self, mode)
        n_layers, n_heads = grid.shape[1], grid.shape[2]
        rows = [self.labels.index(f"L{a}H{h}") for a in range(n_layers - 1) for h in range(n_heads)]
        out = torch.full((n_layers, n_heads, n_layers, n_heads), float("nan"))
        out[: n_layers - 1] = grid[rows].reshape(n_layers - 1, n_heads, n_layers, n_heads)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"labels": self.labels, **{m: _listed(getattr(self, m)) for m in _MODES}}


def _listed(t: torch.Tensor) -> list[Any]:
    return [[[None if v != v else float(v) for v in row] for row in grid] for grid in t.tolist()]


def _parts(cache: Any, model: HookedModel, layer: int, n_heads: int) -> Stack:
    """The residual stream entering ``layer``: embeddings, each earlier head's output, and the rest."""
    names = model.hook_names
    embeds = ["hook_embed", *(["hook_pos_embed"] if "hook_pos_embed" in names else [])]
    tensors = [cache[name].expand_as(cache["resid_pre", layer]) for name in embeds]
    labels = [name.removeprefix("hook_") for name in embeds]
    for earlier in range(layer):
        result = cache["result", earlier]  # [batch pos head d_model]
        tensors += list(result.unbind(2))
        labels += [f"L{earlier}H{h}" for h in range(n_heads)]
    rest = cache["resid_pre", layer] - torch.stack(tensors).sum(0)
    return Stack(torch.stack([*tensors, rest]), [*labels, "rest"])


def head_input_parts(model: HookedModel, cache: Any, layer: int, mode: str) -> Stack:
    """Block ``layer``'s query (``q``), key (``k``) or value (``v``) vectors split by source, [part batch pos head
    d_head]: the parts of the residual stream (:func:`_parts`) through the frozen LayerNorm and ``W_Q``/``W_K``/``W_V``,
    and the biases as the last part (``bias``). They add up to the cached ``hook_q``/``hook_k``/``hook_v``."""
    if mode not in _MODES:
        raise ValueError(f"mode must be 'q', 'k' or 'v', got {mode!r}")
    w = {"q": model.W_Q, "k": model.W_K, "v": model.W_V}[mode][layer]  # [head d_model d_head]
    b = {"q": model.b_Q, "k": model.b_K, "v": model.b_V}[mode][layer]  # [head d_head]
    parts = _parts(cache, model, layer, model.cfg.n_heads)
    ln1 = model.wiring.blocks[layer].ln1
    has_norm = ln1 is not None and not isinstance(ln1, torch.nn.Identity)
    normed = cache.apply_ln_to_stack(parts, layer).tensor if has_norm else parts.tensor
    contrib = torch.einsum("cbpm,hme->cbphe", normed, w)
    norm_bias = model.wiring.frozen(ln1).bias if has_norm and ln1 is not None else None
    bias = b + (torch.einsum("m,hme->he", norm_bias, w) if norm_bias is not None else 0.0)
    bias_part = bias.expand_as(contrib[0])[None]
    return Stack(torch.cat([contrib, bias_part]), [*parts.labels, "bias"])


def activation_composition(model: HookedModel, tokens: torch.Tensor) -> ActivationComposition:
    """:class:`ActivationComposition` of ``model`` on ``tokens`` (see the module docstring)."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, lambda n: "hook_result" in n or "embed" in n or "resid_pre" in n)
        labels = [*_parts(cache, model, n_layers - 1, n_heads).labels, "bias"]
        shares = {m: torch.full((len(labels), n_layers, n_heads), float("nan")) for m in _MODES}
        for layer in range(n_layers):
            for mode in _MODES:
                parts = head_input_parts(model, cache, layer, mode)
                total = parts.total()  # [batch pos head d_head]
                along = torch.einsum("cbphe,bphe->ch", parts.tensor, total) / total.pow(2).sum((0, 1, 3))
                shares[mode][[labels.index(label) for label in parts.labels], layer] = along
    return ActivationComposition(labels=labels, **shares)
