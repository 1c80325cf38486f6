"""BatchTopK SAE (Bussmann et al. 2024): the ``k × batch`` largest activations across the whole batch.

Training keeps the ``k·B`` largest ReLU pre-activations of a batch of ``B`` tokens, so the
number of active latents varies per token with ``k`` on average. Inference cannot depend on
the batch, so a global threshold is learned: a running average of the smallest kept
activation. At inference the SAE is a JumpReLU with that threshold, and it is saved in
SAELens's format as a ``jumprelu`` SAE with the threshold on every latent (as SAELens does).
Under DDP the top ``k·B`` is taken on each process's share of the batch.
"""

from __future__ import annotations

import torch
from jaxtyping import Float

from circuitscope.sae.base import SAE, SAEConfig, StepContext, TrainOutput, register_architecture
from circuitscope.sae.topk import auxk_loss

__all__ = ["BatchTopKSAE"]


@register_architecture("batchtopk")
class BatchTopKSAE(SAE):
    """Top ``k × batch`` activations per batch in training; a learned threshold at inference."""

    uses_k = True
    saelens_architecture = "jumprelu"  # what it is at inference; read back as a JumpReLU SAE

    threshold: torch.Tensor

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__(cfg)
        self.register_buffer("threshold", torch.zeros((), dtype=getattr(torch, cfg.dtype)))

    def activation(self, pre: Float[torch.Tensor, "... d_sae"]) -> Float[torch.Tensor, "... d_sae"]:
        return pre * (pre > self.threshold).to(pre.dtype) * (pre > 0).to(pre.dtype)

    def training_forward(self, x: Float[torch.Tensor, "batch d_in"], ctx: StepContext) -> TrainOutput:
        assert self.cfg.k is not None
        pre = self.pre_acts(x)
        flat = torch.relu(pre).flatten()
        n = min(self.cfg.k * x.shape[0], flat.numel())
        vals, idx = flat.topk(n)
        acts = torch.zeros_like(flat).scatter(0, idx, vals).view_as(pre)
        recon = self.decode(acts)
        mse = self.mse(recon, x)
        aux = auxk_loss(self, x, recon, pre, ctx)
        with torch.no_grad():
            positive = vals[vals > 0]
            if positive.numel():
                lr = float(ctx.options.get("threshold_lr", 0.01))
                low = positive.min()
                first = bool(self.threshold == 0)
                self.threshold.copy_(low if first else (1 - lr) * self.threshold + lr * low)
        return TrainOutput.from_acts(recon, acts, mse + aux, {"mse": mse.detach(), "aux": aux.detach()})

    def buffers_to_save(self) -> dict[str, torch.Tensor]:
        return {"threshold": self.threshold.expand(self.cfg.d_sae).clone()}
