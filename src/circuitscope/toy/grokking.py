"""Modular addition and the progress measures of Nanda et al. (2023): task, fast forward, Fourier metrics.

The task: inputs ``a b =`` (tokens ``a``, ``b`` in [0, p) and ``=`` = ``p``), answer ``(a + b) mod p``
read at the last position. A fraction of the p^2 pairs is the training set.

Fourier basis over Z_p: the constant, and ``cos(w_k x)``, ``sin(w_k x)`` with ``w_k = 2 pi k / p``
for ``k = 1 .. (p - 1) / 2``. Progress measures on a logit table ``L[a, b, c]``:

- the key-frequency part of the logits: for each key frequency k, the projection of ``L[:, :, c]``
  (over the p x p grid of inputs) onto ``cos(w_k (a + b))`` and ``sin(w_k (a + b))``;
- restricted loss: cross-entropy on all pairs of the logits keeping only the constant (mean over
  the grid) and the key-frequency part; low once the Fourier circuit exists;
- excluded loss: cross-entropy on the training pairs of the logits with the key-frequency part
  removed; it rises as the model stops relying on memorisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
from jaxtyping import Bool, Float, Int

from circuitscope.engine.batching import apply_in_batches
from circuitscope.models.toy.modeling import ToyBlock, ToyTransformer
from circuitscope.toy.errors import LabConfigError

__all__ = [
    "ModularAddition",
    "embedding_fourier_norms",
    "excluded_loss",
    "fast_last_logits",
    "is_prime",
    "key_frequencies",
    "key_frequency_part",
    "logit_table",
    "progress_losses",
    "restricted_loss",
]


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


@dataclass(frozen=True)
class ModularAddition:
    """All p^2 pairs of ``a + b mod p``, split into a training and a test set."""

    p: int
    """The modulus (prime)."""
    train_fraction: float
    """Fraction of the pairs in the training set."""
    seed: int
    """Seed of the split."""

    def __post_init__(self) -> None:
        if not is_prime(self.p):
            raise LabConfigError(
                f"p = {self.p} is not prime; modular addition needs a prime modulus (e.g. 53, 59, 97, 113)"
            )
        if not 0 < self.train_fraction < 1:
            raise LabConfigError(f"train_fraction must lie strictly between 0 and 1, got {self.train_fraction}")
        if round(self.train_fraction * self.p * self.p) < 1:
            raise LabConfigError("train_fraction is too small: the training set would be empty")

    @property
    def equals_token(self) -> int:
        return self.p

    @property
    def d_vocab(self) -> int:
        return self.p + 1

    def inputs(self) -> Int[torch.Tensor, "pair 3"]:
        """All pairs as ``[a, b, =]``, ordered a-major (row ``a * p + b``)."""
        a = torch.arange(self.p).repeat_interleave(self.p)
        b = torch.arange(self.p).repeat(self.p)
        return torch.stack([a, b, torch.full_like(a, self.p)], dim=1)

    def labels(self) -> Int[torch.Tensor, " pair"]:
        x = self.inputs()
        return (x[:, 0] + x[:, 1]) % self.p

    def train_mask(self) -> Bool[torch.Tensor, " pair"]:
        n = self.p * self.p
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        mask = torch.zeros(n, dtype=torch.bool)
        mask[order[: round(self.train_fraction * n)]] = True
        return mask


def fast_last_logits(model: ToyTransformer, x: Int[torch.Tensor, "batch 3"]) -> Float[torch.Tensor, "batch d_vocab"]:
    """Logits at the last position of a 1-layer toy model, equal to ``model(x).logits[:, -1]``.

    In a 1-layer model the keys and values at position j depend only on (token, j), so they are
    computed once per token (tables of size d_vocab instead of batch); the last token is the same
    for the whole batch (``=``), so its query, key and value are one row each. Per example only the
    head outputs (a weighted sum of gathered value rows, d_head wide), ``W_O``, the MLP and the
    unembedding run. Models with more layers, or without learned positions, use
    ``forward(last_only=True)``.
    """
    cfg = model.config
    if cfg.n_layers != 1 or cfg.positional != "learned" or not bool((x[:, -1] == x[0, -1]).all()):
        return model(x, last_only=True).logits[:, -1]
    block = cast(ToyBlock, model.blocks[0])
    attn = block.attn
    H, E, P = cfg.n_heads, cfg.d_head, x.shape[1]
    W_E, W_pos = model.embed.weight, model.pos_embed.weight
    last_embed = W_E[x[0, -1]] + W_pos[P - 1]  # [D]: the shared last token
    last = block.ln1(last_embed)
    q = attn.q(last).view(H, E)
    scores, values = [], []
    for j in range(P - 1):
        table = block.ln1(W_E + W_pos[j])  # [V, D]: every token at position j
        k = attn.k(table).view(-1, H, E)  # [V, H, E]
        v = attn.v(table).view(-1, H, E)
        scores.append(torch.einsum("he,vhe->vh", q, k).index_select(0, x[:, j]))  # [B, H]
        values.append(v.index_select(0, x[:, j]))  # [B, H, E]
    scores.append(torch.einsum("he,he->h", q, attn.k(last).view(H, E)).expand_as(scores[0]))
    values.append(attn.v(last).view(1, H, E))  # broadcast over the batch
    pattern = (torch.stack(scores, dim=-1) * attn.scaling).softmax(-1)  # [B, H, P]
    z = pattern[:, :, 0, None] * values[0]  # [B, H, E]: each head's output, summed over positions
    for j in range(1, P):
        z = z + pattern[:, :, j, None] * values[j]
    resid = last_embed + attn.o(z.reshape(-1, H * E))  # resid_mid at the last position, [B, D]
    resid = resid + block.mlp(block.ln2(resid))
    return model.unembed(model.ln_final(resid))


def logit_table(model: ToyTransformer, task: ModularAddition, batch_size: int = 4096) -> Float[torch.Tensor, "p p p"]:
    """``L[a, b, c]``: the logits of answers c (the ``=`` logit dropped) for every pair.

    ``batch_size`` bounds the rows of one forward pass, a row being one ``a + b =`` input.
    """
    x = task.inputs()
    with torch.no_grad():
        out = apply_in_batches(lambda rows: fast_last_logits(model, rows), x, batch_size)
    return out[:, : task.p].reshape(task.p, task.p, task.p)


def fourier_basis(p: int) -> tuple[Float[torch.Tensor, "basis p"], list[str]]:
    """Orthonormal Fourier basis of functions on Z_p: constant, then cos/sin of each frequency."""
    x = torch.arange(p, dtype=torch.float64)
    rows, names = [torch.ones(p, dtype=torch.float64)], ["const"]
    for k in range(1, (p - 1) // 2 + 1):
        rows += [torch.cos(2 * math.pi * k * x / p), torch.sin(2 * math.pi * k * x / p)]
        names += [f"cos {k}", f"sin {k}"]
    basis = torch.stack(rows)
    return basis / basis.norm(dim=1, keepdim=True), names


def embedding_fourier_norms(model: ToyTransformer, p: int) -> Float[torch.Tensor, " freq"]:
    """Norm of the token embedding along frequency k (cos and sin together), for k = 1 .. (p-1)/2."""
    basis, _ = fourier_basis(p)
    coeffs = basis @ model.embed.weight[:p].double()  # [basis, D]
    per_vector = coeffs.norm(dim=1)[1:].reshape(-1, 2)  # [freq, (cos, sin)]
    return per_vector.norm(dim=1).float()


def key_frequencies(norms: Float[torch.Tensor, " freq"], ratio: float = 3.0) -> list[int]:
    """Frequencies (1-based) whose squared norm exceeds ``ratio`` times the mean squared norm."""
    power = norms.double() ** 2
    keys = [int(i) + 1 for i in torch.nonzero(power > ratio * power.mean()).flatten()]
    return keys or [int(power.argmax()) + 1]


def key_frequency_part(table: Float[torch.Tensor, "p p c"], keys: list[int]) -> Float[torch.Tensor, "p p c"]:
    """Projection of each ``L[:, :, c]`` onto ``cos(w_k (a + b))`` and ``sin(w_k (a + b))`` for k in ``keys``.

    The waves of distinct frequencies are orthogonal over the p x p grid, so the projection is the sum of the
    projections on each wave: two matrix products over the grid, ``waves [2K, p²] @ L [p², c]`` for the
    coefficients and ``wavesᵀ @ coefficients`` for the part.
    """
    p = table.shape[0]
    for k in keys:
        if not 1 <= k <= (p - 1) // 2:
            raise LabConfigError(f"frequency {k} is outside 1..{(p - 1) // 2}")
    s = (torch.arange(p)[:, None] + torch.arange(p)[None, :]).double().reshape(-1)  # a + b over the grid
    angles = [2 * math.pi * k * s / p for k in keys]
    waves = torch.stack([f(a) for a in angles for f in (torch.cos, torch.sin)])  # [2K, p²]
    t = table.double().reshape(p * p, -1)
    coef = (waves @ t) / waves.pow(2).sum(1, keepdim=True)  # [2K, c]
    return (waves.T @ coef).reshape(table.shape).to(table.dtype)


def _ce(table: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    p = table.shape[0]
    labels = (torch.arange(p)[:, None] + torch.arange(p)[None, :]) % p
    logits, target = table.reshape(p * p, -1).double(), labels.reshape(-1)
    if mask is not None:
        logits, target = logits[mask], target[mask]
    return float(torch.nn.functional.cross_entropy(logits, target))


def restricted_loss(table: Float[torch.Tensor, "p p p"], keys: list[int]) -> float:
    """Loss on all pairs of the constant-plus-key-frequency part of the logits."""
    const = table.double().mean((0, 1), keepdim=True)
    return _ce(const + key_frequency_part(table, keys).double())


def excluded_loss(
    table: Float[torch.Tensor, "p p p"], keys: list[int], train_mask: Bool[torch.Tensor, " pair"]
) -> float:
    """Loss on the training pairs of the logits with the key-frequency part removed."""
    return _ce(table.double() - key_frequency_part(table, keys).double(), train_mask)


def progress_losses(
    table: Float[torch.Tensor, "p p p"], keys: list[int], train_mask: Bool[torch.Tensor, " pair"]
) -> tuple[float, float]:
    """``(restricted_loss, excluded_loss)`` of one table, the key-frequency part computed once for both."""
    part = key_frequency_part(table, keys).double()
    t = table.double()
    return _ce(t.mean((0, 1), keepdim=True) + part), _ce(t - part, train_mask)
