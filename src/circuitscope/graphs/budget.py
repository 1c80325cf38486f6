"""How much memory an attribution graph needs, and the longest prompt that fits a budget.

The estimate counts what grows with the prompt (``float32`` everywhere, 4 bytes a number):

- the dense adjacency, ``n_nodes^2`` with ``n_nodes = kept features + n_layers * pos + pos + logits`` (kept:
  all the active features, or at most ``max_feature_nodes``), and under a cap the computed rows on every
  source, ``(kept + logits) * (features + n_layers * pos + pos + logits)``;
- the forward pass kept for the backward passes, ``batch`` copies of the prompt (it stops at the final norm):
  per layer and position about ``16 d_model + 3 d_mlp`` saved activations plus the ``heads * pos`` pattern;
- the active features' decoder rows, ``features * n_layers_written * d_model``.

Features grow with the prompt at the rate the prompt showed (``features / pos`` per position), so the longest
prompt that fits is the largest ``pos`` whose estimate is within the budget (under a cap the adjacency stops
growing with the features, and much longer prompts fit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from circuitscope.graphs.errors import GraphBudgetError

if TYPE_CHECKING:
    from circuitscope.core.config import ModelConfig

__all__ = ["check_budget", "estimate_bytes"]

_GB = 1024**3


def estimate_bytes(
    cfg: ModelConfig,
    n_pos: int,
    n_features: int,
    n_logits: int,
    batch: int,
    writes: int = 1,
    *,
    cap: int | None = None,
) -> int:
    """The estimate above, in bytes (``writes``: layers each feature writes to; 1 per-layer, more cross-layer;
    ``cap``: the most feature nodes, ``None`` for all)."""
    kept = n_features if cap is None else min(cap, n_features)
    others = cfg.n_layers * n_pos + n_pos + n_logits
    adjacency = (kept + others) ** 2
    rows = 0 if kept == n_features else (kept + n_logits) * (n_features + others)
    per_layer = n_pos * (16 * cfg.d_model + 3 * cfg.d_mlp + cfg.n_heads * n_pos)
    forward = batch * cfg.n_layers * per_layer
    decoders = n_features * writes * cfg.d_model
    return 4 * (adjacency + rows + forward + decoders)


# Same shape as src/circuitscope/graphs/budget.py:estimate_bytes on purpose: the check takes the estimate's
# arguments and the budget, and passes them on (also for shorter prompts, to say how long a prompt fits).
def check_budget(
    cfg: ModelConfig,
    n_pos: int,
    n_features: int,
    n_logits: int,
    batch: int,
    memory_gb: float,
    writes: int = 1,
    *,
    cap: int | None = None,
) -> int:
    """The estimate in bytes; a :class:`GraphBudgetError` saying how long a prompt fits when it is over the budget."""
    budget = int(memory_gb * _GB)
    rate = n_features / max(n_pos, 1)
    need = estimate_bytes(cfg, n_pos, n_features, n_logits, batch, writes, cap=cap)
    max_pos = 0
    while estimate_bytes(cfg, max_pos + 1, round(rate * (max_pos + 1)), n_logits, batch, writes, cap=cap) <= budget:
        max_pos += 1
        if max_pos >= cfg.n_ctx:
            break
    if need > budget:
        raise GraphBudgetError(
            f"the graph of this {n_pos}-token prompt ({n_features} active features) needs about "
            f"{need / _GB:.1f} GB, over the {memory_gb:g} GB budget; prompts up to {max_pos} tokens fit: "
            "shorten the prompt, lower the batch size or raise the memory budget (--memory-gb)"
        )
    return need
