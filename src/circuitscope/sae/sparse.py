"""Sparse SAE kernels: a TopK step's encoder and decoder with backward passes over the selected latents only.

A TopK SAE keeps ``k`` of ``d_sae`` latents per token, so its gradient is sparse: at batch 4096
and ``d_sae`` 10,240, k = 32 is 0.3% of the pre-activations. Autograd through dense tensors
would form a dense ``[batch, d_sae]`` gradient and spend two more dense products on it (the
encoder weight's and the input's); here both ends of the step work on the ``(row, latent,
value)`` triples alone:

- :func:`gathered_pre_acts` is ``pre.gather(-1, idx)`` for pre-activations computed without a
  graph; its backward is the encoder's gradient as a sum of ``batch * k`` outer products
  (:func:`scatter_rows`), plus ``b_enc``'s and ``b_dec``'s, without the dense gradient;
- :func:`sparse_decode` is ``Σ_j values[:, j] W_dec[idx[:, j]]`` (``embedding_bag``), whose
  weight gradient is the same kind of sum.

:func:`scatter_rows` sorts the triples by latent and lets ``embedding_bag`` sum each latent's
rows: deterministic (a resumed run ends bit for bit where an uninterrupted one would) and with
no ``[batch * k, d]`` temporary.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch.nn import functional

__all__ = ["gathered_pre_acts", "scatter_rows", "sparse_decode"]


def scatter_rows(
    idx: Int[torch.Tensor, "batch k"],
    weights: Float[torch.Tensor, "batch k"],
    rows: Float[torch.Tensor, "batch d"],
    n: int,
) -> Float[torch.Tensor, "n d"]:
    """``out[j] = Σ_{b, s: idx[b, s] = j} weights[b, s] * rows[b]``, an ``[n, d]`` tensor (zero where unselected).

    It equals ``dense(idx, weights).T @ rows`` with ``dense`` the ``[batch, n]`` matrix holding
    ``weights`` at ``idx``, in ``batch * k * d`` multiply-adds instead of ``batch * n * d``.
    """
    flat = idx.reshape(-1)
    order = _stable_argsort(flat)
    row_of = torch.div(order, idx.shape[-1], rounding_mode="floor")
    offsets = torch.zeros(n, dtype=torch.long, device=idx.device)
    offsets[1:] = torch.bincount(flat, minlength=n)[:-1].cumsum(0)
    return functional.embedding_bag(
        row_of, rows, offsets, mode="sum", per_sample_weights=weights.reshape(-1)[order].to(rows.dtype)
    )


def _stable_argsort(flat: torch.Tensor) -> torch.Tensor:
    """The stable sorting permutation of integer ``flat``: numpy's radix sort on the CPU (torch's CPU sort is several
    times slower at this size), torch's elsewhere."""
    if flat.device.type != "cpu":
        return flat.argsort(stable=True)
    return torch.from_numpy(np.argsort(flat.numpy(), kind="stable"))


class _GatheredPreActs(torch.autograd.Function):
    """``pre.gather(-1, idx)`` with ``pre = (x - b_dec) @ W_enc + b_enc`` computed outside the graph."""

    @staticmethod
    def forward(  # type: ignore[override]  # torch's Function.forward is untyped (*args)
        ctx: Any,
        pre: torch.Tensor,
        idx: torch.Tensor,
        centred: torch.Tensor,
        W_enc: torch.Tensor,
        b_enc: torch.Tensor,
        b_dec: torch.Tensor,
        subtract_b_dec: bool,
    ) -> torch.Tensor:
        ctx.save_for_backward(idx, centred, W_enc)
        ctx.subtract_b_dec = subtract_b_dec
        return pre.gather(-1, idx)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        idx, centred, W_enc = ctx.saved_tensors
        need = ctx.needs_input_grad
        d_sae = W_enc.shape[1]
        grad_w = grad_b_enc = grad_b_dec = None
        if need[3]:
            grad_w = scatter_rows(idx, grad, centred, d_sae).T
        column = torch.zeros(d_sae, dtype=grad.dtype, device=grad.device).index_add_(
            0, idx.reshape(-1), grad.reshape(-1)
        )
        if need[4]:
            grad_b_enc = column
        if need[5] and ctx.subtract_b_dec:
            grad_b_dec = -(W_enc @ column)
        return None, None, None, grad_w, grad_b_enc, grad_b_dec, None


def gathered_pre_acts(
    pre: Float[torch.Tensor, "batch d_sae"],
    idx: Int[torch.Tensor, "batch k"],
    centred: Float[torch.Tensor, "batch d_in"],
    W_enc: Float[torch.Tensor, "d_in d_sae"],
    b_enc: Float[torch.Tensor, " d_sae"],
    b_dec: Float[torch.Tensor, " d_in"],
    subtract_b_dec: bool,
) -> Float[torch.Tensor, "batch k"]:
    """The pre-activations at ``idx``, differentiable in ``W_enc``, ``b_enc`` and ``b_dec``.

    ``pre`` must be ``centred @ W_enc + b_enc`` computed without a graph, ``centred`` the encoder's
    input (``x - b_dec`` when ``subtract_b_dec``, else ``x``; the data, which gets no gradient).
    """
    out: torch.Tensor = _GatheredPreActs.apply(pre, idx, centred, W_enc, b_enc, b_dec, subtract_b_dec)
    return out


class _DecoderGrad(torch.autograd.Function):
    """The identity on a sparse decode's output that gives ``W_dec`` its gradient from :func:`scatter_rows`.

    The decode itself runs on the detached ``W_dec`` (``embedding_bag``'s own backward then only
    gives the values theirs); this adds the weight's, ``Σ values[b, s] grad[b]`` at ``idx[b, s]``.
    """

    @staticmethod
    def forward(
        ctx: Any, out: torch.Tensor, W_dec: torch.Tensor, idx: torch.Tensor, values: torch.Tensor
    ) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(idx, values)
        ctx.d_sae = W_dec.shape[0]
        return out.view_as(out)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        idx, values = ctx.saved_tensors
        grad_w = scatter_rows(idx, values, grad, ctx.d_sae) if ctx.needs_input_grad[1] else None
        return grad, grad_w, None, None


def sparse_decode(
    W_dec: Float[torch.Tensor, "d_sae d_in"],
    indices: Int[torch.Tensor, "batch k"],
    values: Float[torch.Tensor, "batch k"],
) -> Float[torch.Tensor, "batch d_in"]:
    """``Σ_j values[:, j] W_dec[indices[:, j]]`` without forming the dense activation matrix."""
    values = values.to(W_dec.dtype)
    out = functional.embedding_bag(indices, W_dec.detach(), per_sample_weights=values, mode="sum")
    if not W_dec.requires_grad or not torch.is_grad_enabled():
        return out
    attached: torch.Tensor = _DecoderGrad.apply(out, W_dec, indices, values.detach())
    return attached
