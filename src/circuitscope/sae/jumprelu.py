"""JumpReLU SAE trained with straight-through estimators of the threshold gradient (Rajamanoharan et al. 2024).

``f_i = pre_i · H(pre_i - θ_i)``. The step function has no useful gradient in θ, so the
backward pass uses a rectangle-kernel pseudo-derivative of bandwidth ``ε``:
``∂JumpReLU/∂θ = -(θ/ε) K((pre-θ)/ε)`` and ``∂H/∂θ = -(1/ε) K((pre-θ)/ε)``, with
``K(u) = 1{|u| < 1/2}``. The sparsity penalty is the L0 norm ``λ Σ_i H(pre_i - θ_i)``.
The threshold is a parameter ``threshold`` (SAELens's name), kept non-negative.
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import nn

from circuitscope.sae.base import SAE, SAEConfig, StepContext, TrainOutput, register_architecture

__all__ = ["JumpReLUSAE", "jumprelu", "jumprelu_training"]


def _kernel(pre: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> torch.Tensor:
    return ((pre - threshold).abs() < bandwidth / 2).to(pre.dtype) / bandwidth


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, pre: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> torch.Tensor:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx: Any, *grad_outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:  # type: ignore[override]
        (grad,) = grad_outputs
        pre, threshold = ctx.saved_tensors
        grad_pre = grad * (pre > threshold).to(pre.dtype)
        grad_threshold = -(threshold * _kernel(pre, threshold, ctx.bandwidth) * grad).sum(0)
        return grad_pre, grad_threshold, None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, pre: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> torch.Tensor:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx: Any, *grad_outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:  # type: ignore[override]
        (grad,) = grad_outputs
        pre, threshold = ctx.saved_tensors
        grad_threshold = -(_kernel(pre, threshold, ctx.bandwidth) * grad).sum(0)
        return torch.zeros_like(pre), grad_threshold, None


def jumprelu(pre: Float[torch.Tensor, "... d_sae"], threshold: torch.Tensor) -> Float[torch.Tensor, "... d_sae"]:
    """``pre · H(pre - threshold)``: a latent passes only above its threshold (inference)."""
    return pre * (pre > threshold).to(pre.dtype)


def jumprelu_training(
    pre: Float[torch.Tensor, "batch d_sae"], threshold: torch.Tensor, bandwidth: float
) -> tuple[Float[torch.Tensor, "batch d_sae"], Float[torch.Tensor, "batch d_sae"]]:
    """The activations and the step ``H(pre - threshold)``, both with the straight-through threshold gradients."""
    acts = _JumpReLU.apply(pre, threshold, bandwidth)
    step = _Step.apply(pre, threshold, bandwidth)
    assert isinstance(acts, torch.Tensor) and isinstance(step, torch.Tensor)
    return acts, step


@register_architecture("jumprelu")
class JumpReLUSAE(SAE):
    """A latent fires only above its own learned threshold."""

    default_sparsity_coefficient = 1e-3
    saelens_architecture = "jumprelu"
    reads_saelens = ("jumprelu", "batchtopk")

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__(cfg)
        self.threshold = nn.Parameter(torch.zeros(cfg.d_sae, dtype=getattr(torch, cfg.dtype)))

    def initialize_own(self) -> None:
        self.threshold.fill_(0.001)

    def activation(self, pre: Float[torch.Tensor, "... d_sae"]) -> Float[torch.Tensor, "... d_sae"]:
        return jumprelu(pre, self.threshold)

    def training_forward(self, x: Float[torch.Tensor, "batch d_in"], ctx: StepContext) -> TrainOutput:
        bandwidth = float(ctx.options.get("bandwidth", 0.001))
        pre = self.pre_acts(x)
        acts, step = jumprelu_training(pre, self.threshold, bandwidth)
        recon = self.decode(acts)
        mse = self.mse(recon, x)
        l0 = step.sum(-1).mean()
        loss = mse + ctx.sparsity_coefficient * l0
        return TrainOutput.from_acts(recon, acts, loss, {"mse": mse.detach(), "l0": l0.detach()})

    @torch.no_grad()
    def clamp_threshold(self) -> None:
        self.threshold.clamp_(min=0.0)

    @torch.no_grad()
    def init_learned_threshold(self, value: float) -> None:
        self.threshold.fill_(value)

    def after_optimizer_step(self) -> None:
        self.clamp_threshold()

    def saved_shapes(self) -> dict[str, tuple[int, ...]]:
        return {**super().saved_shapes(), "threshold": (self.cfg.d_sae,)}
