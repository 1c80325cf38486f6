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

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from circuitscope.graphs.errors import GraphBudgetError

if TYPE_CHECKING:
    from circuitscope.core.config import ModelConfig

__all__ = ["GraphSize", "check_budget", "estimate_bytes"]

_GB = 1024**3


@dataclass(frozen=True)
class GraphSize:
    """What an attribution graph's memory grows with: the model, the prompt and the graph's settings."""

    cfg: ModelConfig
    """The model's configuration (layers, widths, heads, context length)."""
    n_pos: int
    """Tokens of the prompt."""
    n_features: int
    """Active features on the prompt."""
    n_logits: int
    """Logit nodes."""
    batch: int
    """Backward passes run at once (copies of the forward pass kept)."""
    writes: int = 1
    """Layers each feature writes to: 1 for per-layer transcoders, more for cross-layer ones."""
    cap: int | None = None
    """The most feature nodes (``None`` for all)."""

    def n_bytes(self) -> int:
        """The estimate above, in bytes."""
        cfg, n_pos, n_features = self.cfg, self.n_pos, self.n_features
        kept = n_features if self.cap is None else min(self.cap, n_features)
        others = cfg.n_layers * n_pos + n_pos + self.n_logits
        adjacency = (kept + others) ** 2
        rows = 0 if kept == n_features else (kept + self.n_logits) * (n_features + others)
        per_layer = n_pos * (16 * cfg.d_model + 3 * cfg.d_mlp + cfg.n_heads * n_pos)
        forward = self.batch * cfg.n_layers * per_layer
        decoders = n_features * self.writes * cfg.d_model
        return 4 * (adjacency + rows + forward + decoders)

    def at(self, n_pos: int) -> GraphSize:
        """The same graph for an ``n_pos``-token prompt, its features growing at this prompt's rate per token."""
        rate = self.n_features / max(self.n_pos, 1)
        return replace(self, n_pos=n_pos, n_features=round(rate * n_pos))


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
    """:meth:`GraphSize.n_bytes` of these arguments (``writes``: layers each feature writes to; ``cap``: the most
    feature nodes, ``None`` for all)."""
    return GraphSize(cfg, n_pos, n_features, n_logits, batch, writes, cap).n_bytes()


def check_budget(size: GraphSize, memory_gb: float) -> int:
    """The estimate in bytes; a :class:`GraphBudgetError` saying how long a prompt fits when it is over the budget."""
    budget = int(memory_gb * _GB)
    need = size.n_bytes()
    max_pos = 0
    while size.at(max_pos + 1).n_bytes() <= budget:
        max_pos += 1
        if max_pos >= size.cfg.n_ctx:
            break
    if need > budget:
        raise GraphBudgetError(
            f"the graph of this {size.n_pos}-token prompt ({size.n_features} active features) needs about "
            f"{need / _GB:.1f} GB, over the {memory_gb:g} GB budget; prompts up to {max_pos} tokens fit: "
            "shorten the prompt, lower the batch size or raise the memory budget (--memory-gb)"
        )
    return need
