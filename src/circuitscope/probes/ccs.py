"""Contrast-Consistent Search (Burns et al. 2023): an unsupervised probe from contrast pairs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int

from circuitscope.errors import ShapeError
from circuitscope.probes.standardise import Standardisation

__all__ = ["CCSProbe", "train_ccs"]


@dataclass(frozen=True)
class CCSProbe:
    """``p(x) = sigmoid(normalise(x) · weight + bias)``; the truth of a pair is ``(p(x+) + 1 - p(x-)) / 2``."""

    weight: Float[torch.Tensor, " d"]
    bias: float
    pos: Standardisation
    """How the positive side of a pair is normalised (its own statistics, as in the paper)."""
    neg: Standardisation
    """How the negative side is normalised."""
    loss: float
    """Final CCS loss (consistency + confidence) of the best of the random restarts."""

    def credence(
        self, x_pos: Float[torch.Tensor, "n d"], x_neg: Float[torch.Tensor, "n d"]
    ) -> Float[torch.Tensor, " n"]:
        p_pos = torch.sigmoid(self.pos(x_pos) @ self.weight + self.bias)
        p_neg = torch.sigmoid(self.neg(x_neg) @ self.weight + self.bias)
        return (p_pos + 1 - p_neg) / 2

    def accuracy(self, x_pos: torch.Tensor, x_neg: torch.Tensor, labels: Int[torch.Tensor, " n"]) -> float:
        """Accuracy up to the sign CCS cannot know: ``max(acc, 1 - acc)``."""
        pred = (self.credence(x_pos, x_neg) > 0.5).long()
        acc = float((pred == labels.long()).float().mean())
        return max(acc, 1 - acc)


# Keyword options alike to the toy superposition trainer's by shape only: another loss and optimiser.
def train_ccs(
    x_pos: Float[torch.Tensor, "n d"],
    x_neg: Float[torch.Tensor, "n d"],
    *,
    n_tries: int = 10,
    epochs: int = 1000,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    seed: int = 0,
) -> CCSProbe:
    """Fit CCS with the paper's loss: ``(p(x+) - (1 - p(x-)))^2 + min(p(x+), p(x-))^2``, best of ``n_tries``.

    Each side is normalised separately (mean removed, divided by its std), as in the paper,
    so the probe cannot just read which of " true" / " false" was appended.
    """
    if x_pos.shape != x_neg.shape or x_pos.ndim != 2:
        raise ShapeError(f"x_pos and x_neg must both be [n, d], got {tuple(x_pos.shape)} and {tuple(x_neg.shape)}")
    pos, neg = Standardisation.fit(x_pos), Standardisation.fit(x_neg)
    zp, zn = pos(x_pos), neg(x_neg)
    g = torch.Generator().manual_seed(seed)
    best: tuple[float, torch.Tensor, float] | None = None
    d = x_pos.shape[1]
    for _ in range(n_tries):
        w = (torch.randn(d, generator=g) / d**0.5).requires_grad_(True)
        b = torch.zeros((), requires_grad=True)
        opt = torch.optim.AdamW([w, b], lr=lr, weight_decay=weight_decay)
        with torch.enable_grad():
            for _ in range(epochs):
                opt.zero_grad()
                pp, pn = torch.sigmoid(zp @ w + b), torch.sigmoid(zn @ w + b)
                loss = ((pp - (1 - pn)) ** 2).mean() + (torch.minimum(pp, pn) ** 2).mean()
                loss.backward()
                opt.step()
        with torch.no_grad():
            pp, pn = torch.sigmoid(zp @ w + b), torch.sigmoid(zn @ w + b)
            final = float(((pp - (1 - pn)) ** 2).mean() + (torch.minimum(pp, pn) ** 2).mean())
        if best is None or final < best[0]:
            best = (final, w.detach().clone(), float(b.detach()))
    assert best is not None
    return CCSProbe(best[1], best[2], pos, neg, best[0])
