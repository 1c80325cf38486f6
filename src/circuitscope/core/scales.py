"""Constant factors a family applies to its streams: the logit transform and the sublayer multipliers.

Some families scale what their modules compute before it goes on: Cohere multiplies its logits by
``logit_scale``, Granite divides them by ``logits_scaling`` and multiplies its embeddings and each
sublayer's output by ``embedding_multiplier`` / ``residual_multiplier`` outside any module. The adapter names
the config attributes (``models/base.py``); this module reads them and applies them the way the model does.

A hook point on such a scaled value sits on the module's output ``out``, while the model then computes
``out * factor`` itself: :func:`unscale` gives what the module must hand on so that the model's product is the
value the hook returned, bit for bit when the hook left it unchanged.
"""

from __future__ import annotations

from typing import Any

import torch

from circuitscope.models.base import Adapter

__all__ = ["final_softcap", "finish_logits", "logit_factor", "unscale"]


def _value(text_config: Any, attr: str | None) -> float | None:
    value = None if attr is None else getattr(text_config, attr, None)
    return None if value is None else float(value)


def final_softcap(adapter: Adapter, text_config: Any) -> float | None:
    """The final logit softcap the adapter declares, read off the config now (None: no cap)."""
    return _value(text_config, adapter.final_softcap_attr)


def logit_factor(adapter: Adapter, text_config: Any) -> float:
    """The linear factor on the unembedded logits (a multiplier, or one over a divisor); 1.0 for none."""
    multiplier = _value(text_config, adapter.logit_multiplier_attr)
    divisor = _value(text_config, adapter.logit_divisor_attr)
    return (1.0 if multiplier is None else multiplier) / (1.0 if divisor is None else divisor)


def finish_logits(adapter: Adapter, text_config: Any, logits: torch.Tensor) -> torch.Tensor:
    """The family's final logit transform after the unembedding, in the model's own operations and order:
    ``* multiplier``, ``/ divisor``, then the softcap ``c * tanh(logits / c)``."""
    multiplier = _value(text_config, adapter.logit_multiplier_attr)
    divisor = _value(text_config, adapter.logit_divisor_attr)
    if multiplier is not None:
        logits = logits * multiplier
    if divisor is not None:
        logits = logits / divisor
    cap = final_softcap(adapter, text_config)
    return torch.tanh(logits / cap) * cap if cap is not None else logits


def unscale(out: torch.Tensor, scaled: torch.Tensor, new: torch.Tensor, factor: float) -> torch.Tensor:
    """What a module must output so that the model's ``output * factor`` is ``new``.

    ``scaled`` is ``out * factor`` as the hook saw it. Left unchanged (``new is scaled``), ``out`` itself goes on,
    so the model computes exactly its own product; under autograd a zero-valued term keeps the hooked tensor on
    the graph (gradients reach it, and reach ``out`` through it once). A rewritten value goes on as
    ``new / factor``: the model's product then equals ``new`` up to one rounding.
    """
    if new is not scaled:
        return new / factor
    if not (torch.is_grad_enabled() and new.requires_grad):
        return out
    return out.detach() + (new - new.detach()) / factor
