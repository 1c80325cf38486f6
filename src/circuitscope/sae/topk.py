"""TopK SAE with the AuxK loss against dead latents (Gao et al. 2024).

``f = TopK_k(ReLU(pre))``: the ``k`` largest pre-activations of each token are kept. The
decoder runs sparsely (``embedding_bag`` over the selected rows), so training costs one
dense encoder product forward and one backward. AuxK reconstructs the residual error from
the ``aux_k`` largest pre-activations among dead latents (``aux_k`` defaults to ``d_in // 2``),
weighted by ``aux_coefficient`` (1/32) and by ``min(n_dead / aux_k, 1)``, as SAELens does.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch.nn import functional

from circuitscope.sae.base import SAE, StepContext, TrainOutput, register_architecture

__all__ = ["TopKSAE", "auxk_loss", "sparse_decode"]


def sparse_decode(
    W_dec: Float[torch.Tensor, "d_sae d_in"],
    indices: Int[torch.Tensor, "batch k"],
    values: Float[torch.Tensor, "batch k"],
) -> Float[torch.Tensor, "batch d_in"]:
    """``Σ_j values[:, j] W_dec[indices[:, j]]`` without forming the dense activation matrix."""
    return functional.embedding_bag(indices, W_dec, per_sample_weights=values.to(W_dec.dtype), mode="sum")


def auxk_loss(
    sae: SAE,
    x: Float[torch.Tensor, "batch d_in"],
    recon: Float[torch.Tensor, "batch d_in"],
    pre: Float[torch.Tensor, "batch d_sae"],
    ctx: StepContext,
) -> torch.Tensor:
    """AuxK: how well the top dead latents reconstruct the error ``x - recon`` (zero if none is dead)."""
    dead = ctx.dead_mask
    coefficient = float(ctx.options.get("aux_coefficient", 1 / 32))
    if dead is None or coefficient == 0 or not bool(dead.any()):
        return pre.new_zeros(())
    n_dead = int(dead.sum())
    aux_k = int(ctx.options.get("aux_k") or sae.cfg.d_in // 2)
    k = min(aux_k, n_dead)
    dead_idx = dead.nonzero().squeeze(-1)
    vals, pos = pre[:, dead_idx].topk(k, dim=-1)
    err_hat = sparse_decode(sae.W_dec, dead_idx[pos], torch.relu(vals))
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
        vals, idx = pre.topk(self.cfg.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, idx, torch.relu(vals))

    def training_forward(self, x: Float[torch.Tensor, "batch d_in"], ctx: StepContext) -> TrainOutput:
        assert self.cfg.k is not None
        pre = self.pre_acts(x)
        vals, idx = pre.topk(self.cfg.k, dim=-1)
        vals = torch.relu(vals)
        recon = sparse_decode(self.W_dec, idx, vals) + self.b_dec
        mse = self.mse(recon, x)
        aux = auxk_loss(self, x, recon, pre, ctx)
        with torch.no_grad():
            acts = torch.zeros_like(pre).scatter(-1, idx, vals)
        return TrainOutput(recon, acts, mse + aux, {"mse": mse.detach(), "aux": aux.detach()})
