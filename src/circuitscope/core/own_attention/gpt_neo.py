"""GPT-Neo's ``GPTNeoSelfAttention._attn`` with the attention hooks.

The family's own math (transformers 5.x): scores ``q @ k^T`` in float32 with no 1/sqrt(d_head) scale, the
module's causal buffer (a window of ``window_size`` keys on local layers) applied with ``torch.where``,
the additive mask added, softmax, cast back to v's dtype, dropout, ``@ v``. ``hook_attn_scores`` sees
the masked scores, ``hook_pattern`` the softmax. GPT-Neo has no rotary, so ``hook_rot_q/k`` do not exist.
"""

from __future__ import annotations

import torch
from torch import nn

from circuitscope.core.attention import AttentionCore

__all__ = ["hooked"]


def hooked(
    core: AttentionCore,
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``_attn(query, key, value, attention_mask)`` (q, k, v: [batch, head, pos, d_head]) -> (out, pattern)."""
    query = query.to(torch.float32)
    key = key.to(torch.float32)
    scores = torch.matmul(query, key.transpose(-1, -2))  # [batch, head, q_pos, k_pos]
    q_len, k_len = query.size(-2), key.size(-2)
    bias = module.get_buffer("bias")
    allowed = bias[:, :, k_len - q_len : k_len, :k_len]
    floor = torch.tensor(torch.finfo(scores.dtype).min, dtype=scores.dtype, device=scores.device)
    scores = torch.where(allowed, scores, floor)
    if attention_mask is not None:
        scores = scores + attention_mask
    if core.scores.active:
        scores = core.scores(scores)
    pattern = nn.functional.softmax(scores, dim=-1).to(value.dtype)
    if core.pattern.active:
        pattern = core.pattern(pattern)
    dropped = module.get_submodule("attn_dropout")(pattern)
    return torch.matmul(dropped, value), dropped
