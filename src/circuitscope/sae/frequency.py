"""How often each SAE latent fires, over as many activations as it takes to call a latent dead.

A latent is *dead* when it never fires in a window of tokens, so the dead fraction is only
meaningful together with the window's size. The evaluation's few thousand held-out tokens are too
few for a wide SAE: with 10,240 latents and k = 32, a latent that fires once in 50,000 tokens is
alive but is silent on 4,000 tokens two times out of three. Gao et al. (2024) call a latent dead
after 10 million silent tokens; the trainer here tracks a 1-million-token window.

:func:`store_frequencies` counts firings over an activation store: the encoder only, no model
forward pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int

from circuitscope.progress import OnProgress, track
from circuitscope.sae.base import SAE
from circuitscope.sae.errors import SAEShapeError
from circuitscope.sae.store import ActivationStore

__all__ = ["LatentFrequencies", "count_firings", "store_frequencies"]


@dataclass(frozen=True)
class LatentFrequencies:
    """Firing frequency of every latent over ``n_tokens`` activations."""

    frequency: Float[torch.Tensor, " d_sae"]
    """Fraction of the activations on which each latent was active (> 0)."""
    n_tokens: int
    """Activations counted: the window that 'dead' refers to."""
    source: str
    """Where the activations came from (an activation store's folder, or 'evaluation tokens')."""

    @property
    def dead_fraction(self) -> float:
        """Latents that never fired in the window."""
        return float((self.frequency == 0).float().mean())

    def dense_fraction(self, threshold: float = 0.1) -> float:
        """Latents active on more than ``threshold`` of the activations."""
        return float((self.frequency > threshold).float().mean())

    def histogram(self, bins: int = 32, low: float = -8.0) -> tuple[Int[torch.Tensor, " bins"], torch.Tensor]:
        """Latents per log10-frequency bin (dead latents not counted) and the bin edges."""
        alive = self.frequency[self.frequency > 0]
        counts = torch.histc(alive.log10().clamp(low, 0), bins=bins, min=low, max=0.0).long()
        return counts, torch.linspace(low, 0.0, bins + 1)

    def to_dict(self) -> dict[str, Any]:
        return {"n_tokens": self.n_tokens, "source": self.source, "dead_fraction": self.dead_fraction}


def count_firings(
    sae: SAE, batches: Iterable[Float[torch.Tensor, "n d_in"]], source: str, max_tokens: int | None = None
) -> LatentFrequencies:
    """Count how often each latent fires over ``batches`` of raw hook activations (up to ``max_tokens``)."""
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.float64)
    n = 0
    with torch.no_grad():
        for x in batches:
            if x.shape[-1] != sae.cfg.d_in:
                raise SAEShapeError(f"activations have width {x.shape[-1]}, but the SAE reads d_in={sae.cfg.d_in}")
            if max_tokens is not None:
                x = x[: max_tokens - n]
            fired += (sae.encode(x.to(sae.W_enc.dtype)) > 0).sum(0).double().cpu()
            n += x.shape[0]
            if max_tokens is not None and n >= max_tokens:
                break
    if n == 0:
        raise SAEShapeError("no activations to count latent firings on")
    return LatentFrequencies(frequency=(fired / n).float(), n_tokens=n, source=source)


# Keyword options one per line, each its own documented knob: alike in shape to other entry points, on purpose.
def store_frequencies(
    sae: SAE,
    store: ActivationStore,
    max_tokens: int | None = None,
    batch_size: int = 2048,
    on_progress: OnProgress | None = None,
) -> LatentFrequencies:
    """Latent frequencies over an activation store's shards, in order (all of them unless ``max_tokens``).

    ``on_progress(stage, done, total)`` is told the shards read.
    """
    if store.hook != sae.cfg.hook_name:
        raise SAEShapeError(
            f"the store at {store.folder} holds {store.hook}, but the SAE reads {sae.cfg.hook_name}; "
            "give the store collected at the SAE's hook"
        )
    if store.d_in != sae.cfg.d_in:
        raise SAEShapeError(f"the store's activations have width {store.d_in}, the SAE reads d_in={sae.cfg.d_in}")
    if max_tokens is not None and max_tokens < 1:
        raise SAEShapeError(f"max_tokens must be >= 1, got {max_tokens}")

    def batches() -> Iterable[torch.Tensor]:
        for i in track(range(len(store.shards)), "SAE: latent frequencies over the store", on_progress):
            acts, _ = store.load_shard(i)
            yield from acts.split(batch_size)

    return count_firings(sae, batches(), str(store.folder), max_tokens)
