"""Corpus feature statistics, the explorer's second background job: how often each feature of a source fires.

Over the server's ``--data`` texts, cut into contexts (:func:`~circuitscope.sae.build_contexts`), the source's hook
is cached batch by batch and its firings are counted by :func:`~circuitscope.sae.count_firings` (the counter the
SAE evaluation uses). The BOS position is left out when the features were trained without it
(``exclude_bos``), as the activation store leaves it out. The result: the dead and dense fractions over that
window, the log10-frequency histogram, and the most frequent features.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from circuitscope.core.hooked_model import HookedModel
from circuitscope.engine.batching import batch_slices
from circuitscope.progress import OnProgress, track
from circuitscope.sae import Corpus, LatentFrequencies, build_contexts, count_firings
from circuitscope.serve.errors import ServeInputError
from circuitscope.serve.views._json import round_sig
from circuitscope.serve.views.features import FeatureSource

__all__ = ["FeatureStatsView", "feature_stats_job"]

N_MOST_FREQUENT = 20
"""Features listed as the most frequent."""
DENSE = 0.1
"""A feature active on more than this share of the tokens counts as dense."""


@dataclass(frozen=True)
class FeatureStatsView:
    """How often each feature of one source fires over the server's texts."""

    source: str
    """The source's name."""
    frequencies: LatentFrequencies
    """Each feature's firing frequency over the window (what "dead" refers to), from the library's counter."""

    def most_frequent(self, k: int = N_MOST_FREQUENT) -> list[tuple[int, float]]:
        """(feature, frequency) of the ``k`` most frequent features that fired, most frequent first."""
        frequency = self.frequencies.frequency
        values, ids = frequency.topk(min(k, int(frequency.numel())))
        return [(int(i), float(v)) for v, i in zip(values, ids, strict=True) if v > 0]

    def to_json(self) -> dict[str, Any]:
        """The counter's own summary under this source's name, the dense share, the histogram, the top features."""
        counts, edges = self.frequencies.histogram()
        return {
            **self.frequencies.to_dict(),
            "source": self.source,
            "dense_fraction": self.frequencies.dense_fraction(DENSE),
            "histogram": {"edges": round_sig(edges), "counts": [int(c) for c in counts]},
            "most_frequent": [{"feature": f, "frequency": v} for f, v in self.most_frequent()],
        }


@torch.no_grad()
def feature_stats_job(
    model: HookedModel,
    source: FeatureSource,
    texts: Sequence[str],
    *,
    context_size: int = 64,
    max_contexts: int = 256,
    batch_size: int = 8,
    on_progress: OnProgress | None = None,
) -> FeatureStatsView:
    """Firing statistics of ``source`` over ``texts`` (at most ``max_contexts`` contexts of ``context_size``)."""
    if not texts:
        raise ServeInputError("feature statistics need texts: start the server with --data DIR")
    size = min(context_size, model.cfg.n_ctx)
    contexts = build_contexts(model, Corpus("the server's texts", list(texts)), size, max_contexts=max_contexts)
    tokens, hook = contexts.tokens, source.hook
    first = 1 if (source.sae.cfg.exclude_bos and contexts.has_bos) else 0

    def batches() -> Iterator[torch.Tensor]:
        for rows in track(batch_slices(len(tokens), batch_size), "feature statistics", on_progress):
            acts = model.cache_activations(tokens[rows], hook)[hook][:, first:]  # [batch, pos, d_in]
            yield acts.reshape(-1, acts.shape[-1])

    return FeatureStatsView(source.name, count_firings(source.sae, batches(), "the server's texts"))
