"""What views share when they turn tensors into JSON: token text, and floats rounded for large arrays."""

from __future__ import annotations

import torch

from circuitscope.core.hooked_model import HookedModel

__all__ = ["round_sig", "token_text"]


def token_text(model: HookedModel, token: int) -> str:
    """One token id as text."""
    text = model.to_string(token)
    assert isinstance(text, str)
    return text


def round_sig(values: torch.Tensor, digits: int = 5) -> list:
    """``values`` as nested lists of floats rounded to ``digits`` significant digits (for large JSON arrays)."""
    x = values.detach().double().cpu()
    magnitude = torch.floor(torch.log10(x.abs().clamp(min=1e-300)))
    shift = (digits - 1 - magnitude).clamp(-300, 300)
    up = 10.0 ** shift.clamp(min=0)  # x * 10^k for k >= 0: exact powers, so the division is correctly rounded
    down = 10.0 ** (-shift).clamp(min=0)
    out = torch.where(shift >= 0, torch.round(x * up) / up, torch.round(x / down) * down)
    out = torch.where(torch.isfinite(x) & (x != 0), out, x)
    return out.tolist()
