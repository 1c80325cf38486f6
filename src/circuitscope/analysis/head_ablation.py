"""Head-ablation importance: how much the next-token loss rises when one head is knocked out.

Each head is ablated in turn at ``attn.hook_z`` (its output before ``W_O``), so its write to the
residual stream becomes zero (``zero``) or its mean write over the data (``mean``, the mean of z
over batch and positions, which keeps the head's constant contribution). The loss is the mean
next-token cross-entropy over every position after ``start_pos``.

Cost: one recorded forward pass, then for each layer the blocks from that layer on (the blocks
before it see the same input in every ablated run and are not recomputed, see
:class:`~circuitscope.core.replay.BlockReplay`), several heads at once as stacked copies of the
batch. The cross-entropy is taken in chunks of positions, so a 262k-token vocabulary never
materialises logits for the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from jaxtyping import Float, Int

from circuitscope.core.replay import BlockReplay, unembed_at
from circuitscope.errors import ShapeError
from circuitscope.progress import progress

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
    *,
    tokens_per_pass: int = 2048,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> HeadAblation:
    """Loss increase for every head ablated alone (zero- or mean-ablation of ``hook_z``).

    ``tokens_per_pass`` bounds batch x positions x heads ablated together in one pass (memory,
    not the result). ``on_progress(stage, done, total)`` is called after each pass; without it a
    progress bar is drawn.
    """
    if method not in ("zero", "mean"):
        raise ValueError(f"method must be 'zero' or 'mean', got {method!r}")
    if tokens.ndim != 2 or tokens.shape[1] < start_pos + 2:
        raise ShapeError(f"tokens must be [batch, pos] with pos >= start_pos + 2, got {tuple(tokens.shape)}")
    if tokens_per_pass < 1:
        raise ValueError(f"tokens_per_pass must be >= 1, got {tokens_per_pass}")
    cfg = model.cfg
    tokens = tokens.to(model.device)
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(cfg.n_layers)]
    mean_z: dict[str, torch.Tensor] = {}

    def record_mean(z: torch.Tensor, hook: Any) -> None:
        mean_z[hook.name] = z.mean((0, 1))  # [head, d_head]

    with torch.no_grad():
        with model.hooks([(name, record_mean) for name in names] if method == "mean" else []):
            replay = BlockReplay(model, tokens)
        clean = float(_next_token_losses(model, replay.final_resid, tokens, start_pos)[0])
        copies = max(1, min(cfg.n_heads, tokens_per_pass // tokens.numel()))
        work = [
            (layer, list(range(first, min(first + copies, cfg.n_heads))))
            for layer in range(cfg.n_layers)
            for first in range(0, cfg.n_heads, copies)
        ]
        increase = torch.zeros(cfg.n_layers, cfg.n_heads)
        b = tokens.shape[0]
        stage = f"{method}-ablating each head on {tokens.numel()} tokens"
        steps = work if on_progress is not None else progress(work, stage, total=len(work))
        for done, (layer, chunk) in enumerate(steps, 1):

            def ablate(z: torch.Tensor, hook: Any, chunk: list[int] = chunk) -> torch.Tensor:
                z = z.clone()
                for i, head in enumerate(chunk):  # copy i of the batch loses head chunk[i]
                    z[i * b : (i + 1) * b, :, head] = 0.0 if method == "zero" else mean_z[hook.name][head]
                return z

            with model.hooks([(names[layer], ablate)]):
                final = replay.run_resid(layer, replay.resid_pre[layer].repeat(len(chunk), 1, 1))
            losses = _next_token_losses(model, final, tokens, start_pos)
            increase[layer, chunk] = losses.cpu() - clean
            if on_progress is not None:
                on_progress(stage, done, len(work))
    return HeadAblation(loss_increase=increase, clean_loss=clean, method=method)


def _next_token_losses(
    model: HookedModel,
    final_resid: Float[torch.Tensor, "rows pos d_model"],
    tokens: Int[torch.Tensor, "batch pos"],
    start_pos: int,
    chunk_rows: int = 256,
) -> Float[torch.Tensor, " copies"]:
    """Mean next-token loss of each stacked copy of the batch, from the final residual stream.

    Logits are made ``chunk_rows`` positions at a time (final norm, unembedding, softcap, as the
    model does), so memory stays bounded for any vocabulary.
    """
    b = tokens.shape[0]
    copies = final_resid.shape[0] // b
    pred = final_resid[:, start_pos:-1].reshape(-1, 1, final_resid.shape[-1])  # [copies*b*(p-1-start), 1, d]
    target = tokens[:, start_pos + 1 :].repeat(copies, 1).reshape(-1)
    total = torch.empty(target.shape[0], dtype=torch.float32, device=final_resid.device)
    zero = torch.zeros(chunk_rows, dtype=torch.long, device=final_resid.device)
    for s in range(0, target.shape[0], chunk_rows):
        rows = pred[s : s + chunk_rows]
        logits = unembed_at(model, rows, zero[: rows.shape[0]]).float()
        total[s : s + rows.shape[0]] = torch.nn.functional.cross_entropy(
            logits, target[s : s + rows.shape[0]], reduction="none"
        )
    return total.view(copies, -1).mean(1)


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
