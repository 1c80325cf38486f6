"""Falcon's ``FalconAttention.forward`` (rotary layouts) with the attention hooks.

The family's own math (transformers 5.x), on the eager path: the fused projection split per key/value
group (``[group, (q heads of the group, k, v), d_head]``, which is also the multi-query layout with one
group and the per-head one with a group per head), rotary on q and k (``hook_rot_q``, ``hook_rot_k`` over
the key/value heads), scores ``q @ k^T / sqrt(d_head)`` with the mask (``hook_attn_scores``), softmax in
the hidden states' dtype (``hook_pattern``), ``@ v``, then ``dense``. The new decoder architecture's keys
and values are repeated over their group's query heads, as Falcon broadcasts them. Falcon's ALiBi layout
is refused by its adapter before anything is wired.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from transformers.models.falcon.modeling_falcon import apply_rotary_pos_emb

from circuitscope.core.attention import AttentionCore

__all__ = ["hooked"]


def _on_heads(point: Any, x: torch.Tensor) -> torch.Tensor:
    """A hook over [batch, pos, head, d_head] applied to [batch, head, pos, d_head]."""
    return point(x.transpose(1, 2)).transpose(1, 2) if point is not None and point.active else x


def hooked(
    core: AttentionCore,
    module: nn.Module,
    hidden_states: torch.Tensor,
    alibi: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    position_ids: torch.Tensor | None = None,
    layer_past: Any = None,
    use_cache: bool = False,
    output_attentions: bool = False,
    position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``FalconAttention.forward`` with the hooks -> (attention output [batch pos d_model], pattern)."""
    if alibi is not None or position_embeddings is None:
        raise NotImplementedError("Falcon's ALiBi attention is not wired (its adapter refuses such configs)")
    attn: Any = module  # a FalconAttention: its attributes are Falcon's own
    h, d = int(attn.num_heads), int(attn.head_dim)
    fused = attn.query_key_value(hidden_states)
    b, s, width = fused.shape
    kv = (width // d - h) // 2  # the projection holds h query heads, kv key heads and kv value heads
    per = h // kv
    grouped = fused.view(b, s, kv, per + 2, d)
    query = grouped[:, :, :, :per].reshape(b, s, h, d).transpose(1, 2)  # [batch, head, pos, d_head]
    key = grouped[:, :, :, per].transpose(1, 2)  # [batch, kv_head, pos, d_head]
    value = grouped[:, :, :, per + 1].transpose(1, 2)
    cos, sin = position_embeddings
    query, key = apply_rotary_pos_emb(query, key, cos, sin)
    query = _on_heads(core.rot_q, query)
    key = _on_heads(core.rot_k, key)
    if attn.new_decoder_architecture and per > 1:  # Falcon broadcasts each group's key/value to its queries
        key = key.repeat_interleave(per, dim=1)
        value = value.repeat_interleave(per, dim=1)
    if layer_past is not None:
        key, value = layer_past.update(key, value, attn.layer_idx)
    scores = (query @ key.transpose(-1, -2)) / math.sqrt(d)  # [batch, head, q_pos, k_pos]
    if attention_mask is None:  # Falcon always materialises its mask; without one, causal as it is
        q_idx = torch.arange(key.shape[-2] - s, key.shape[-2], device=scores.device)[:, None]
        attention_mask = torch.arange(key.shape[-2], device=scores.device)[None, :] <= q_idx
    if attention_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
    else:
        scores = scores + attention_mask
    if core.scores.active:
        scores = core.scores(scores)
    pattern = nn.functional.softmax(scores, dim=-1, dtype=hidden_states.dtype)
    if core.pattern.active:
        pattern = core.pattern(pattern)
    out = (pattern @ value).permute(0, 2, 1, 3).reshape(b, s, h * d)
    return attn.dense(out), pattern
