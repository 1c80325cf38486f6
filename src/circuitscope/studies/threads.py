"""The torch thread count a study runs under: given, or the faster of 1 and 2 measured on a model forward.

On a busy 2-core machine a second torch thread can make Gemma's forward several times slower (the
threads wait on each other whenever the scheduler parks one), while on a quiet one it is faster; so
unless a count is given, a study measures both on a forward it needs anyway
(:func:`~circuitscope.toy.threads.fastest_thread_count`) and runs under the faster, restoring the
previous count afterwards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from circuitscope.toy.threads import fastest_thread_count, torch_threads

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["forward_threads", "torch_threads"]


def forward_threads(model: HookedModel, tokens: torch.Tensor, layer: int) -> int:
    """1 or 2 (at most the cores torch may use): whichever runs ``model`` on ``tokens`` up to block ``layer``'s
    input faster, measured now (a forward under ``inference_mode`` leaves no trace)."""
    hook = f"blocks.{min(layer, model.cfg.n_layers - 1)}.hook_resid_pre"

    def forward() -> None:
        with torch.inference_mode():
            model.cache_activations(tokens.to(model.device), [hook])

    return fastest_thread_count(forward)
