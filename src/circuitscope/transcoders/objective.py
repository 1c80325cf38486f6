"""One training step's loss for a whole set of transcoders: every layer's reconstruction error plus sparsity.

The batch is every covered layer's MLP input ``x [n_layers, rows, d_in]`` and output
``y [n_layers, rows, d_out]`` from one model forward. Each source layer's features are computed
once and decoded into every target they write to; the loss is the sum over target layers of the
squared error summed over ``d_out`` and averaged over rows, plus the sparsity penalty (ReLU: L1
weighted by the norm of each feature's decoders across targets; JumpReLU: L0 through the
straight-through estimator of :mod:`circuitscope.sae.jumprelu`). TopK runs on the SAE's sparse
kernels (:mod:`circuitscope.sae.sparse`): one dense encoder product outside the graph, backward
passes over the ``k`` selected features only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float

from circuitscope.sae.jumprelu import jumprelu_training
from circuitscope.sae.sparse import gathered_pre_acts, sparse_decode
from circuitscope.transcoders.modules import TranscoderSet

__all__ = ["StepLoss", "step_loss"]


@dataclass(frozen=True)
class StepLoss:
    """One step's loss and what the trainer measures from it."""

    loss: torch.Tensor
    """Scalar to minimise."""
    squared_error: Float[torch.Tensor, " n_layers"]
    """Each target layer's squared error, summed over rows and ``d_out`` (detached)."""
    sparsity: torch.Tensor
    """The sparsity term before its coefficient (detached; 0 for TopK)."""
    fired: Float[torch.Tensor, "n_layers d_sae"]
    """How many rows each feature fired on."""


@dataclass(frozen=True)
class _Layers:
    """The set's stacked parameters split into per-layer views once per step (``unbind``): the backward pass then
    stacks the layers' gradients in one copy, where indexing each layer would fill a whole-size zero gradient per
    layer and add them up (a third of a step's time at Gemma's size)."""

    W_enc: tuple[torch.Tensor, ...]
    b_enc: tuple[torch.Tensor, ...]
    b_dec: tuple[torch.Tensor, ...]
    W_dec: list[tuple[torch.Tensor, ...]]
    threshold: tuple[torch.Tensor, ...] | None
    W_skip: tuple[torch.Tensor, ...] | None

    @classmethod
    def of(cls, tc: TranscoderSet) -> _Layers:
        return cls(
            tc.W_enc.unbind(0),
            tc.b_enc.unbind(0),
            tc.b_dec.unbind(0),
            [dec.unbind(0) for dec in tc.W_dec],
            None if tc.threshold is None else tc.threshold.unbind(0),
            None if tc.W_skip is None else tc.W_skip.unbind(0),
        )


def _source_features(
    tc: TranscoderSet, p: _Layers, i: int, x: torch.Tensor, bandwidth: float
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Layer ``i``'s features: (TopK's indices or None, their values or the dense activations, sparsity, fired)."""
    c = tc.cfg
    if c.architecture == "topk":
        assert c.k is not None
        with torch.no_grad():
            pre = torch.addmm(p.b_enc[i], x, p.W_enc[i])
            idx = pre.topk(c.k, dim=-1, sorted=False).indices
        vals = torch.relu(gathered_pre_acts(pre, idx, x, p.W_enc[i], p.b_enc[i], p.b_enc[i], False))
        with torch.no_grad():
            weights = (vals > 0).reshape(-1).to(x.dtype)
            fired = torch.bincount(idx.reshape(-1), weights=weights, minlength=c.d_sae)
        return idx, vals, vals.new_zeros(()), fired
    pre = x @ p.W_enc[i] + p.b_enc[i]
    if p.threshold is not None:
        acts, step = jumprelu_training(pre, p.threshold[i], bandwidth)
        sparsity = step.sum(-1).mean()
    else:  # ReLU: L1 weighted by the norm of each feature's decoders over all its targets
        acts = torch.relu(pre)
        sparsity = (acts * tc.W_dec[i].pow(2).sum((0, 2)).sqrt()).sum(-1).mean()
    with torch.no_grad():
        fired = (acts > 0).sum(0).to(x.dtype)
    return None, acts, sparsity, fired


def step_loss(
    tc: TranscoderSet,
    x: Float[torch.Tensor, "n_layers rows d_in"],
    y: Float[torch.Tensor, "n_layers rows d_out"],
    sparsity_coefficient: float,
    bandwidth: float,
) -> StepLoss:
    """The loss of one batch (see the module docstring); gradients flow into every parameter of ``tc``."""
    n = len(tc.layers)
    p = _Layers.of(tc)
    estimates: list[torch.Tensor] = [p.b_dec[t].expand_as(y[t]) for t in range(n)]
    sparsity = x.new_zeros(())
    fired = []
    for i in range(n):
        idx, vals, penalty, count = _source_features(tc, p, i, x[i], bandwidth)
        sparsity = sparsity + penalty
        fired.append(count)
        for j, dec in enumerate(p.W_dec[i]):
            part = sparse_decode(dec, idx, vals) if idx is not None else vals @ dec
            estimates[i + j] = estimates[i + j] + part
    if p.W_skip is not None:
        estimates = [estimates[t] + x[t] @ p.W_skip[t] for t in range(n)]
    errors = torch.stack([(estimates[t] - y[t]).pow(2).sum(-1).mean() for t in range(n)])
    loss = errors.sum() + sparsity_coefficient * sparsity
    rows = x.shape[1]
    return StepLoss(loss, errors.detach() * rows, sparsity.detach(), torch.stack(fired))
