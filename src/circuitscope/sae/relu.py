"""ReLU SAE with an L1 penalty (Bricken et al. 2023), optionally weighted by decoder norms (Anthropic, April 2024).

``f = ReLU((x - b_dec) W_enc + b_enc)``. The penalty is ``λ Σ_i f_i ||W_dec[i]||`` with
``l1_weighting="decoder_norm"`` (the 2024 update: the decoder is left unconstrained and the
norm enters the penalty instead), or ``λ Σ_i f_i`` with ``"plain"`` (use with unit-norm decoder rows).
Saved in SAELens's format as architecture ``standard``.
"""

from __future__ import annotations

import torch
from jaxtyping import Float

from circuitscope.sae.base import SAE, StepContext, TrainOutput, register_architecture

__all__ = ["ReLUSAE"]


@register_architecture("relu")
class ReLUSAE(SAE):
    """ReLU encoder, linear decoder, L1 sparsity penalty."""

    default_sparsity_coefficient = 5.0
    decoder_norm_l1 = True
    saelens_architecture = "standard"
    reads_saelens = ("standard",)

    def activation(self, pre: Float[torch.Tensor, "... d_sae"]) -> Float[torch.Tensor, "... d_sae"]:
        return torch.relu(pre)

    def training_forward(self, x: Float[torch.Tensor, "batch d_in"], ctx: StepContext) -> TrainOutput:
        acts = torch.relu(self.pre_acts(x))
        recon = self.decode(acts)
        mse = self.mse(recon, x)
        if ctx.options.get("l1_weighting", "decoder_norm") == "decoder_norm":
            l1 = (acts * self.W_dec.norm(dim=-1)).sum(-1).mean()
        else:
            l1 = acts.sum(-1).mean()
        loss = mse + ctx.sparsity_coefficient * l1
        return TrainOutput.from_acts(recon, acts, loss, {"mse": mse.detach(), "l1": l1.detach()})
