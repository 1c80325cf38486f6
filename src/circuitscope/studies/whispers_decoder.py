"""The decoder of the whispers study: a small non-causal transformer from read activations to input tokens.

It reads the chosen dimensions of one residual stream at every read position, ``x [batch, pos, d_in]``,
and predicts the input token at each position over a compact vocabulary (the training text's most
frequent tokens plus one "other" class). Attention is not masked: every position sees the whole
read sequence, so the guess at position p may use what later positions still carry about token p.

Top to bottom: standardize each read dimension (mean and spread from the first training batch,
kept as buffers, so a saved decoder reads raw activations) -> a linear map to ``d_model`` plus a
learned position embedding -> ``n_layers`` pre-norm encoder blocks (no dropout: a training run is
a pure function of its seed) -> a final norm -> logits over the compact vocabulary.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import nn

__all__ = ["WhisperDecoder", "sample_guesses"]


class WhisperDecoder(nn.Module):
    """Non-causal transformer: ``[batch, pos, d_in]`` activations -> ``[batch, pos, vocab]`` token logits."""

    mean: torch.Tensor
    """Per read dimension, the mean subtracted first (a buffer)."""
    scale: torch.Tensor
    """Per read dimension, the spread divided by next (a buffer)."""

    def __init__(
        self, d_in: int, n_pos: int, vocab: int, *, d_model: int, n_layers: int, n_heads: int, seed: int
    ) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("mean", torch.zeros(d_in))
        self.register_buffer("scale", torch.ones(d_in))
        self.embed = nn.Linear(d_in, d_model)
        self.pos = nn.Parameter(torch.zeros(n_pos, d_model))
        block = nn.TransformerEncoderLayer(
            d_model, n_heads, 4 * d_model, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(block, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.unembed = nn.Linear(d_model, vocab)
        with torch.no_grad():  # a seeded draw of every weight, independent of torch's global generator
            for name, p in self.named_parameters():
                if name == "pos":
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
                elif p.dim() >= 2:
                    p.copy_(torch.randn(p.shape, generator=gen) * p.shape[-1] ** -0.5)
                elif "norm" not in name:
                    p.zero_()  # biases; the norms keep their ones and zeros

    @torch.no_grad()
    def fit_standardization(self, x: Float[torch.Tensor, "batch pos d_in"]) -> None:
        """Set the per-dimension mean and scale from a batch of raw activations."""
        flat = x.reshape(-1, x.shape[-1]).double()
        self.mean.copy_(flat.mean(0).float())
        self.scale.copy_(flat.std(0).clamp_min(1e-6).float())

    def forward(self, x: Float[torch.Tensor, "batch pos d_in"]) -> Float[torch.Tensor, "batch pos vocab"]:
        h = self.embed((x - self.mean) / self.scale)  # [batch, pos, d_model]
        h = h + self.pos[: x.shape[1]]  # + position embedding
        h = self.blocks(h)  # non-causal: no mask
        return self.unembed(self.norm(h))  # [batch, pos, vocab]


def sample_guesses(
    logits: Float[torch.Tensor, "pos vocab"], n: int, temperature: float, generator: torch.Generator
) -> Int[torch.Tensor, "n pos"]:
    """``n`` guesses of the input, each position drawn from ``softmax(logits / temperature)`` on its own.

    The decoder predicts every position independently given the activations, so a guess is a draw
    from the product of its per-position distributions. ``temperature == 0`` is the argmax, ``n`` times.
    """
    if temperature == 0:
        return logits.argmax(-1).expand(n, -1).clone()
    probs = (logits.float() / temperature).softmax(-1)  # [pos, vocab]
    return torch.multinomial(probs, n, replacement=True, generator=generator).T  # [n, pos]
