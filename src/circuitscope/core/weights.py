"""Per-head weight views in TransformerLens's shapes, read from the Hugging Face weights.

``W_Q`` is ``[head, d_model, d_head]`` per layer (``q = x @ W_Q[h] + b_Q[h]``),
``W_K``/``W_V`` the same with the model's key/value heads, ``W_O`` is
``[head, d_head, d_model]`` (``out = sum_h z[h] @ W_O[h] + b_O``). These are views of
the weights as loaded: no folding or centering is applied.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import nn

from circuitscope.core.config import ModelConfig

__all__ = ["head_in_weights", "head_out_weights"]


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
    """``W_O`` and ``b_O`` of one layer's output projection."""
    w = _matrix(o, conv1d)  # [head*d_head, d_model]
    return w.reshape(cfg.n_heads, cfg.d_head, w.shape[-1]), _bias(o)


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
    w = _matrix(qkv, conv1d)  # [d_model, 3*h*d]
    b = _bias(qkv)
    d_model = w.shape[0]
    if layout == "concat":
        ws = w.reshape(d_model, 3, h, d).permute(1, 2, 0, 3)  # [3 head d_model d_head]
        bs = None if b is None else b.reshape(3, h, d)
    else:  # per_head: output index = head*(3*d) + which*d + i
        ws = w.reshape(d_model, h, 3, d).permute(2, 1, 0, 3)
        bs = None if b is None else b.reshape(h, 3, d).permute(1, 0, 2)
    return [(ws[i], None if bs is None else bs[i]) for i in range(3)]
