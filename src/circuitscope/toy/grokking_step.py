"""The grokking lab's training loss with its gradients in closed form, a block of rows at a time.

:func:`fast_last_loss` is ``cross_entropy(fast_last_logits(model, x), y)`` for a 1-layer toy model without
LayerNorm or attention biases, with a ReLU MLP (the grokking model). The per-token tables (each position's
attention scores against the shared last token's query, and its value rows) are computed by autograd: they
are ``d_vocab`` rows, not ``batch``. Everything per example (the attention pattern over the positions, the
head outputs, ``W_O``, the MLP, the unembedding and the cross-entropy) runs forward and backward in one
pass over ``block_rows`` rows at a time, in closed form: the block's activations stay in the core's cache,
the ReLU's mask is its output, and the parameter gradients accumulate into the block-independent sums. Autograd
then carries the tables' gradients back to the embeddings and ``W_Q``, ``W_K``, ``W_V``. The tests compare
the loss and every gradient with the full model's forward through autograd.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
from jaxtyping import Float, Int

from circuitscope.engine.batching import batch_slices
from circuitscope.models.toy.modeling import ToyBlock, ToyTransformer
from circuitscope.toy.grokking import fast_last_logits

__all__ = ["BLOCK_ROWS", "fast_last_loss", "fused_loss_applies"]

BLOCK_ROWS = 4096
"""Rows of one forward-and-backward pass: the widest activations ([rows, d_mlp] float32, 1 MB at the paper's
d_mlp of 512) then stay in a core's 2 MB cache."""


# Same shape as src/circuitscope/core/weights.py:MLPWeights on purpose: a dataclass of weight tensors, a docstring
# under each field; these are one step's per-token tables and the grokking model's own weights, not a view of a block.
@dataclass(frozen=True)
class _Tables:
    """Per-token tensors of the attention (computed by autograd) and the per-example weights."""

    scores: Float[torch.Tensor, "pos vocab head"]
    """Scaled attention score of the last token's query against each token at each earlier position."""
    values: Float[torch.Tensor, "pos vocab head d_head"]
    """Value rows of each token at each earlier position."""
    last_score: Float[torch.Tensor, " head"]
    """Scaled score of the last token against itself."""
    last_value: Float[torch.Tensor, "head d_head"]
    last_embed: Float[torch.Tensor, " d_model"]
    """Embedding plus position of the shared last token: the residual stream the head outputs add to."""
    W_O: torch.Tensor
    W_in: torch.Tensor
    b_in: torch.Tensor
    W_out: torch.Tensor
    b_out: torch.Tensor
    W_U: torch.Tensor

    def as_list(self) -> list[torch.Tensor]:
        return [getattr(self, name) for name in self.__dataclass_fields__]


def fused_loss_applies(model: ToyTransformer, x: Int[torch.Tensor, "batch pos"]) -> bool:
    """Whether :func:`fast_last_loss` computes in closed form for this model and input (else it uses autograd)."""
    cfg = model.config
    return (
        cfg.n_layers == 1
        and cfg.positional == "learned"
        and not cfg.layer_norm
        and not cfg.bias
        and not cfg.attn_only
        and cfg.act_fn == "relu"
        and x.shape[1] >= 2
        and bool((x[:, -1] == x[0, -1]).all())
    )


def _tables(model: ToyTransformer, x: Int[torch.Tensor, "batch pos"]) -> _Tables:
    """The per-token attention tables, through autograd (``d_vocab`` rows each)."""
    block = cast(ToyBlock, model.blocks[0])
    attn, cfg = block.attn, model.config
    H, E, P = cfg.n_heads, cfg.d_head, x.shape[1]
    W_E, W_pos = model.embed.weight, model.pos_embed.weight
    last = W_E[x[0, -1]] + W_pos[P - 1]  # [D]
    q = attn.q(last).view(H, E) * attn.scaling
    scores, values = [], []
    for j in range(P - 1):
        table = W_E + W_pos[j]  # [V, D]: every token at position j
        scores.append(torch.einsum("he,vhe->vh", q, attn.k(table).view(-1, H, E)))
        values.append(attn.v(table).view(-1, H, E))
    mlp = block.mlp
    return _Tables(
        scores=torch.stack(scores),
        values=torch.stack(values),
        last_score=(q * attn.k(last).view(H, E)).sum(-1),
        last_value=attn.v(last).view(H, E),
        last_embed=last,
        W_O=attn.o.weight,
        W_in=mlp.W_in.weight,
        b_in=mlp.W_in.bias,
        W_out=mlp.W_out.weight,
        b_out=mlp.W_out.bias,
        W_U=model.unembed.weight,
    )


def fast_last_loss(
    model: ToyTransformer,
    x: Int[torch.Tensor, "batch pos"],
    y: Int[torch.Tensor, " batch"],
    block_rows: int = BLOCK_ROWS,
) -> Float[torch.Tensor, ""]:
    """``cross_entropy(model(x).logits[:, -1], y)``, differentiable; in closed form where it applies."""
    if not fused_loss_applies(model, x):
        return torch.nn.functional.cross_entropy(fast_last_logits(model, x), y)
    t = _tables(model, x)
    return cast(torch.Tensor, _FusedLoss.apply(x[:, :-1], y, block_rows, *t.as_list()))


class _FusedLoss(torch.autograd.Function):
    """Forward: the mean cross-entropy, with every input's gradient computed on the way; backward: those."""

    @staticmethod
    def forward(
        ctx: Any, tokens: torch.Tensor, y: torch.Tensor, block_rows: int, *tensors: torch.Tensor
    ) -> torch.Tensor:
        t = _Tables(*tensors)
        grads = _Tables(*[torch.zeros_like(v) for v in tensors])
        total = torch.zeros((), dtype=torch.float64)
        n = tokens.shape[0]
        for rows in batch_slices(n, block_rows):
            total += _block(t, grads, tokens[rows], y[rows], 1.0 / n)
        ctx.grads = grads.as_list()
        return (total / n).to(t.W_U.dtype)

    @staticmethod
    def backward(ctx: Any, *grad_outputs: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return (None, None, None, *[g * grad_outputs[0] for g in ctx.grads])


def _block(t: _Tables, g: _Tables, tokens: torch.Tensor, y: torch.Tensor, scale: float) -> torch.Tensor:
    """One block's summed loss; its gradients (of the mean over all ``1 / scale`` rows) added into ``g``."""
    R, P1 = tokens.shape
    H, E = t.last_value.shape
    gathered = [t.values[j].index_select(0, tokens[:, j]) for j in range(P1)]  # [R, H, E] each
    scores = torch.stack([t.scores[j].index_select(0, tokens[:, j]) for j in range(P1)], -1)  # [R, H, P-1]
    pattern = torch.cat([scores, t.last_score.expand(R, H)[..., None]], -1).softmax(-1)  # [R, H, P]
    z = pattern[..., P1, None] * t.last_value
    for j in range(P1):
        z.addcmul_(pattern[..., j, None], gathered[j])
    z2 = z.view(R, H * E)
    mid = torch.addmm(t.last_embed, z2, t.W_O.T)  # resid_mid, [R, D]
    hidden = torch.addmm(t.b_in, mid, t.W_in.T).relu_()  # [R, M]
    final = torch.addmm(t.b_out, hidden, t.W_out.T).add_(mid)  # resid_post, [R, D]
    logp = torch.log_softmax(final @ t.W_U.T, -1)  # [R, V]
    picked = logp.gather(1, y[:, None])
    loss = -picked.sum(dtype=torch.float64)
    # backward: d loss / d logits = (softmax - onehot) * scale
    d_logits = logp.exp_()
    d_logits.scatter_add_(1, y[:, None], torch.full_like(picked, -1.0)).mul_(scale)
    g.W_U.addmm_(d_logits.T, final)
    d_final = d_logits @ t.W_U  # [R, D]
    g.W_out.addmm_(d_final.T, hidden)
    g.b_out.add_(d_final.sum(0))
    d_hidden = d_final @ t.W_out  # [R, M]
    torch.ops.aten.threshold_backward.grad_input(d_hidden, hidden, 0.0, grad_input=d_hidden)  # ReLU's mask
    g.W_in.addmm_(d_hidden.T, mid)
    g.b_in.add_(d_hidden.sum(0))
    d_mid = torch.addmm(d_final, d_hidden, t.W_in)  # [R, D]
    g.last_embed.add_(d_mid.sum(0))
    g.W_O.addmm_(d_mid.T, z2)
    _attention_backward(t, g, tokens, pattern, gathered, (d_mid @ t.W_O).view(R, H, E))
    return loss


def _attention_backward(
    t: _Tables,
    g: _Tables,
    tokens: torch.Tensor,
    pattern: torch.Tensor,
    gathered: list[torch.Tensor],
    d_z: torch.Tensor,
) -> None:
    """From the head outputs' gradient ``d_z`` [R, H, E] to the tables' gradients (scores and values)."""
    P1 = tokens.shape[1]
    d_pattern = torch.stack([*[(d_z * v).sum(-1) for v in gathered], (d_z * t.last_value).sum(-1)], -1)  # [R, H, P]
    for j in range(P1):
        g.values[j].index_add_(0, tokens[:, j], pattern[..., j, None] * d_z)
    g.last_value.add_(torch.einsum("rh,rhe->he", pattern[..., P1], d_z))
    d_scores = pattern * (d_pattern - (pattern * d_pattern).sum(-1, keepdim=True))  # softmax's backward
    for j in range(P1):
        g.scores[j].index_add_(0, tokens[:, j], d_scores[..., j])
    g.last_score.add_(d_scores[..., P1].sum(0))
