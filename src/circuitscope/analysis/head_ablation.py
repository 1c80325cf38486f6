"""Head-ablation importance: how much the next-token loss rises when one head is knocked out.

Each head is ablated in turn at ``attn.hook_z`` (its output before ``W_O``), so its write to the
residual stream becomes zero (``zero``) or its mean write over the data (``mean``, the mean of z
over batch and positions, which keeps the head's constant contribution). The loss is the mean
next-token cross-entropy over every position after ``start_pos``. One forward pass per head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from jaxtyping import Float, Int

from circuitscope.errors import ShapeError

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

    from circuitscope.core.hooked_model import HookedModel

__all__ = ["HeadAblation", "head_ablation_importance", "next_token_loss", "plot_head_ablation"]


@dataclass(frozen=True)
class HeadAblation:
    """Loss increase when each head is ablated."""

    loss_increase: Float[torch.Tensor, "layer head"]
    """Ablated loss minus clean loss (nats per token)."""
    clean_loss: float
    """Mean next-token loss of the unablated model."""
    method: str
    """``zero`` or ``mean``."""

    def top(self, k: int = 5) -> list[tuple[int, int, float]]:
        """The ``k`` heads whose ablation hurts most, as (layer, head, loss increase)."""
        flat = self.loss_increase.flatten()
        values, index = flat.topk(min(k, flat.numel()))
        n_heads = self.loss_increase.shape[1]
        return [(int(i) // n_heads, int(i) % n_heads, float(v)) for v, i in zip(values, index, strict=True)]

    def to_dict(self) -> dict[str, Any]:
        return {"loss_increase": self.loss_increase.tolist(), "clean_loss": self.clean_loss, "method": self.method}


def next_token_loss(
    logits: Float[torch.Tensor, "batch pos d_vocab"], tokens: Int[torch.Tensor, "batch pos"], start_pos: int = 0
) -> Float[torch.Tensor, ""]:
    """Mean cross-entropy of predicting ``tokens[:, p + 1]`` from position ``p``, for ``p >= start_pos``."""
    pred = logits[:, start_pos:-1].float()
    target = tokens[:, start_pos + 1 :]
    return torch.nn.functional.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1))


def head_ablation_importance(
    model: HookedModel,
    tokens: Int[torch.Tensor, "batch pos"],
    method: Literal["zero", "mean"] = "zero",
    start_pos: int = 0,
) -> HeadAblation:
    """Loss increase for every head ablated alone (zero- or mean-ablation of ``hook_z``)."""
    if method not in ("zero", "mean"):
        raise ValueError(f"method must be 'zero' or 'mean', got {method!r}")
    if tokens.ndim != 2 or tokens.shape[1] < start_pos + 2:
        raise ShapeError(f"tokens must be [batch, pos] with pos >= start_pos + 2, got {tuple(tokens.shape)}")
    cfg = model.cfg
    tokens = tokens.to(model.device)
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, names="blocks.*.attn.hook_z")
        clean = float(next_token_loss(logits, tokens, start_pos))
        increase = torch.zeros(cfg.n_layers, cfg.n_heads)
        for layer in range(cfg.n_layers):
            mean_z = cache[f"blocks.{layer}.attn.hook_z"].mean((0, 1))  # [head, d_head]
            for head in range(cfg.n_heads):

                def ablate(z: torch.Tensor, hook: Any, head: int = head, mean_z: torch.Tensor = mean_z) -> torch.Tensor:
                    z = z.clone()
                    z[:, :, head] = 0.0 if method == "zero" else mean_z[head]
                    return z

                ablated = model.run_with_hooks(tokens, [(f"blocks.{layer}.attn.hook_z", ablate)])
                increase[layer, head] = float(next_token_loss(ablated, tokens, start_pos)) - clean
    return HeadAblation(loss_increase=increase, clean_loss=clean, method=method)


def plot_head_ablation(result: HeadAblation, title: str | None = None) -> Figure:
    """Heatmap [layer, head] of the loss increase."""
    import plotly.graph_objects as go

    z = result.loss_increase.tolist()
    fig = go.Figure(
        go.Heatmap(
            z=z,
            colorscale="Reds",
            colorbar={"title": "Δ loss"},
            hovertemplate="layer %{y}, head %{x}: +%{z:.3f} nats<extra></extra>",
        )
    )
    fig.update_layout(
        title=title or f"loss increase when each head is {result.method}-ablated (clean {result.clean_loss:.3f})",
        xaxis_title="head",
        yaxis_title="layer",
        yaxis={"autorange": "reversed", "dtick": 1},
        xaxis={"dtick": 1},
        height=180 + 40 * len(z),
    )
    return fig
