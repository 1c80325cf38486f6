"""The attention function circuitscope registers with transformers.

transformers routes every supported family's attention through a registry
(``AttentionInterface``). circuitscope registers one function under the name
``"circuitscope"``; it sees q (after any q/k norm and rotary), k, v, the mask and the
scaling of whichever family is loaded, so the per-head hooks inside attention work
with the family's own attention math (rotary, sliding windows, softcapping,
``query_pre_attn_scalar``, grouped-query attention).

When none of a module's attention-internal hooks is active the function hands the
call to transformers' own SDPA kernel, so a model with no such hooks runs at the
plain transformers speed. Otherwise it runs the eager computation, calling
``hook_rot_q``, ``hook_rot_k``, ``hook_attn_scores`` and ``hook_pattern``.

Attention sinks (gpt-oss's ``s_aux``, one learned logit per head) always take the eager path, the
computation of transformers' eager gpt-oss attention: the sink logit joins each row's softmax and its
share is dropped. ``hook_attn_scores`` is the masked scores without the sink; ``hook_pattern`` is the
probabilities of the real keys, so its rows sum to less than 1 (the rest went to the sink).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from circuitscope.core.hook_points import HookPoint

__all__ = ["ATTN_IMPLEMENTATION", "AttentionCore", "ensure_registered"]

ATTN_IMPLEMENTATION = "circuitscope"
_CORE_ATTR = "_circuitscope_core"


class AttentionCore:
    """The hook points inside one attention module's attention function."""

    __slots__ = ("active", "pattern", "rot_k", "rot_q", "scores")

    def __init__(self, rot_q: HookPoint | None, rot_k: HookPoint | None, scores: HookPoint, pattern: HookPoint) -> None:
        self.rot_q = rot_q
        self.rot_k = rot_k
        self.scores = scores
        self.pattern = pattern
        self.active = False

    def refresh(self) -> None:
        points = (self.rot_q, self.rot_k, self.scores, self.pattern)
        self.active = any(p is not None and p.active for p in points)

    def attach(self, module: nn.Module) -> None:
        setattr(module, _CORE_ATTR, self)


def _repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """[batch, kv_head, pos, d_head] -> [batch, kv_head * n_rep, pos, d_head]."""
    if n_rep == 1:
        return x
    b, h, p, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, p, d).reshape(b, h * n_rep, p, d)


def _hooked_attention(
    core: AttentionCore,
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None,
    dropout: float,
    softcap: float | None,
    sinks: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    # query: [batch, head, q_pos, d_head]; key, value: [batch, kv_head, k_pos, d_head]
    if core.rot_q is not None and core.rot_q.active:
        query = core.rot_q(query.transpose(1, 2)).transpose(1, 2)
    if core.rot_k is not None and core.rot_k.active:
        key = core.rot_k(key.transpose(1, 2)).transpose(1, 2)
    n_rep = query.shape[1] // key.shape[1]
    key = _repeat_kv(key, n_rep)
    value = _repeat_kv(value, n_rep)
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(2, 3)) * scale  # [batch, head, q_pos, k_pos]
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    q_len, k_len = scores.shape[-2], scores.shape[-1]
    if attention_mask is None:
        if getattr(module, "is_causal", True) and q_len > 1:
            q_idx = torch.arange(k_len - q_len, k_len, device=scores.device)[:, None]
            k_idx = torch.arange(k_len, device=scores.device)[None, :]
            scores = scores.masked_fill(k_idx > q_idx, torch.finfo(scores.dtype).min)
    elif attention_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attention_mask[..., :k_len], torch.finfo(scores.dtype).min)
    else:
        scores = scores + attention_mask[..., :k_len]
    if core.scores.active:
        scores = core.scores(scores)
    if sinks is None:
        pattern = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    else:
        pattern = _sink_softmax(scores, sinks).to(value.dtype)
    if core.pattern.active:
        pattern = core.pattern(pattern)
    pattern = nn.functional.dropout(pattern, p=dropout, training=module.training)
    out = torch.matmul(pattern, value).transpose(1, 2).contiguous()  # [batch, q_pos, head, d_head]
    return out, pattern


def circuitscope_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention with hook points; SDPA when no attention-internal hook of this module is active."""
    core: AttentionCore | None = getattr(module, _CORE_ATTR, None)
    softcap = kwargs.get("softcap")
    if (core is None or not core.active) and softcap is None and kwargs.get("s_aux") is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if core is None:
        core = _IDLE
    sinks = kwargs.get("s_aux")
    return _hooked_attention(core, module, query, key, value, attention_mask, scaling, dropout, softcap, sinks)


def _sink_softmax(scores: torch.Tensor, sinks: torch.Tensor) -> torch.Tensor:
    """The softmax of each row joined by its head's sink logit, the sink's share dropped (gpt-oss).

    The same operations as transformers' eager gpt-oss attention, so it matches it bit for bit:
    ``scores`` [batch head q_pos k_pos], ``sinks`` [head]; each returned row sums to 1 minus the
    probability the sink took.
    """
    b, _, q_len, _ = scores.shape
    column = sinks.reshape(1, -1, 1, 1).expand(b, -1, q_len, -1)
    combined = torch.cat([scores, column], dim=-1)
    combined = combined - combined.max(dim=-1, keepdim=True).values  # transformers' overflow guard
    return torch.softmax(combined, dim=-1, dtype=combined.dtype)[..., :-1]


class _Idle(HookPoint):
    def __init__(self) -> None:
        super().__init__("idle", None, lambda _p: None)


_IDLE = AttentionCore(None, None, _Idle(), _Idle())


def ensure_registered() -> str:
    """Register the attention function and its mask under ``"circuitscope"`` (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTN_IMPLEMENTATION, circuitscope_attention)
    AttentionMaskInterface.register(ATTN_IMPLEMENTATION, sdpa_mask)
    return ATTN_IMPLEMENTATION
