"""TopK SAE with the AuxK loss against dead latents (Gao et al. 2024).

``f = TopK_k(ReLU(pre))``: the ``k`` largest pre-activations of each token are kept. Training
works on the selected latents only (:mod:`circuitscope.sae.sparse`): the pre-activations are
one dense product computed outside the graph, the ``k`` selected values are gathered with a
backward over those ``batch * k`` entries alone, and the decoder runs sparsely
(``embedding_bag`` over the selected rows), so a step costs one dense product instead of the
three of autograd through a dense ``[batch, d_sae]`` tensor. AuxK reconstructs the residual
error from the ``aux_k`` largest pre-activations among dead latents (``aux_k`` defaults to
``d_in // 2``), weighted by ``aux_coefficient`` (1/32) and by ``min(n_dead / aux_k, 1)``, as
SAELens does.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float, Int

from circuitscope.sae.base import SAE, StepContext, TrainOutput, register_architecture
from circuitscope.sae.sparse import gathered_pre_acts, sparse_decode

__all__ = ["TopKSAE", "auxk_loss", "sparse_decode", "topk_activation"]

ValuesAt = Callable[[Int[torch.Tensor, "batch k"]], Float[torch.Tensor, "batch k"]]
"""The (differentiable) pre-activations at the given latent indices, row by row."""


def topk_activation(pre: Float[torch.Tensor, "... d_sae"], k: int) -> Float[torch.Tensor, "... d_sae"]:
    """``TopK_k(ReLU(pre))``: the ``k`` largest pre-activations of each row kept (negative ones give 0), the rest 0."""
    vals, idx = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, idx, torch.relu(vals))


def auxk_loss(
    sae: SAE,
    x: Float[torch.Tensor, "batch d_in"],
    recon: Float[torch.Tensor, "batch d_in"],
    pre: Float[torch.Tensor, "batch d_sae"],
    ctx: StepContext,
    values_at: ValuesAt | None = None,
) -> torch.Tensor:
    """AuxK: how well the top dead latents reconstruct the error ``x - recon`` (zero if none is dead).

    The dead latents are chosen on ``pre``; their values come from ``values_at`` (default
    ``pre.gather``, for a ``pre`` in the graph).
    """
    dead = ctx.dead_mask
    coefficient = float(ctx.options.get("aux_coefficient", 1 / 32))
    if dead is None or coefficient == 0 or not bool(dead.any()):
        return pre.new_zeros(())
    n_dead = int(dead.sum())
    aux_k = int(ctx.options.get("aux_k") or sae.cfg.d_in // 2)
    k = min(aux_k, n_dead)
    dead_idx = dead.nonzero().squeeze(-1)
    with torch.no_grad():
        pos = pre[:, dead_idx].topk(k, dim=-1).indices
    idx = dead_idx[pos]
    vals = values_at(idx) if values_at is not None else pre.gather(-1, idx)
    err_hat = sparse_decode(sae.W_dec, idx, torch.relu(vals))
    err = (x - recon).detach()
    scale = min(n_dead / aux_k, 1.0)
    return coefficient * scale * (err_hat - err).pow(2).sum(-1).mean()


@register_architecture("topk")
class TopKSAE(SAE):
    """Exactly ``k`` candidate latents per token (fewer fire if some of them are negative)."""

    uses_k = True
    saelens_architecture = "topk"
    reads_saelens = ("topk",)

    def activation(self, pre: Float[torch.Tensor, "... d_sae"]) -> Float[torch.Tensor, "... d_sae"]:
        assert self.cfg.k is not None
        return topk_activation(pre, self.cfg.k)

    def training_forward(self, x: Float[torch.Tensor, "batch d_in"], ctx: StepContext) -> TrainOutput:
        assert self.cfg.k is not None
        self._check(x)
        x = x.to(self.W_enc.dtype)
        subtract = self.cfg.apply_b_dec_to_input
        with torch.no_grad():
            centred = x - self.b_dec if subtract else x
            pre = _workspace(ctx, "pre", (x.shape[0], self.cfg.d_sae), x)
            torch.addmm(self.b_enc, centred, self.W_enc, out=pre)
            idx = pre.topk(self.cfg.k, dim=-1, sorted=False).indices

        def values_at(at: torch.Tensor) -> torch.Tensor:
            return gathered_pre_acts(pre, at, centred, self.W_enc, self.b_enc, self.b_dec, subtract)

        vals = torch.relu(values_at(idx))
        recon = sparse_decode(self.W_dec, idx, vals) + self.b_dec
        mse = self.mse(recon, x)
        aux = auxk_loss(self, x, recon, pre, ctx, values_at)
        with torch.no_grad():
            active = vals > 0
            fired = torch.bincount(idx.reshape(-1), weights=active.reshape(-1).float(), minlength=self.cfg.d_sae)
            l0 = active.sum(-1).float().mean()
        return TrainOutput(recon, mse + aux, {"mse": mse.detach(), "aux": aux.detach()}, fired=fired.long(), l0=l0)


def _workspace(ctx: StepContext, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """The step's scratch tensor ``name`` of ``shape``, kept in ``ctx.workspace`` for the next step."""
    buf = ctx.workspace.get(name)
    if buf is None or tuple(buf.shape) != shape or buf.dtype != like.dtype or buf.device != like.device:
        buf = ctx.workspace[name] = like.new_empty(shape)
    return buf
