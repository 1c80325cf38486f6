"""Top activating contexts of a graph's features, from a corpus: what the viewer's side panel shows.

:func:`feature_top_contexts` runs the model on contexts of a corpus (``sae.build_contexts``: fixed-length,
shuffled, BOS first), encodes every needed layer's transcoder input, and keeps for each feature the contexts
where its largest activation is highest, with its activation on every token (BOS positions count as zero
when the transcoders were trained without them). The result is in the viewer JSON's ``top_contexts`` form.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch

from circuitscope.engine.batching import batch_slices
from circuitscope.graphs.files import process_token
from circuitscope.sae.corpus import Corpus, build_contexts

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel
    from circuitscope.transcoders.modules import TranscoderSet

__all__ = ["feature_top_contexts"]


@torch.no_grad()
def feature_top_contexts(
    model: HookedModel,
    transcoders: TranscoderSet,
    features: Iterable[tuple[int, int]],
    corpus: Corpus,
    *,
    n_contexts: int = 32,
    context_size: int = 24,
    k: int = 3,
) -> dict[tuple[int, int], list[dict[str, Any]]]:
    """Per (layer, index): up to ``k`` of ``n_contexts`` corpus contexts, most activating first, as
    ``{"tokens": [str], "activations": [float]}``."""
    wanted = sorted(set(features))
    if not wanted:
        return {}
    contexts = build_contexts(model, corpus, context_size, max_contexts=n_contexts)
    tokens = contexts.tokens[:n_contexts]
    layers = sorted({layer for layer, _ in wanted})
    names = [transcoders.input_hook(layer) for layer in layers]
    per_feature: list[list[torch.Tensor]] = [[] for _ in wanted]  # [contexts, pos] activations, batch by batch
    for piece in batch_slices(len(tokens), 8):
        _, cache = model.run_with_cache(tokens[piece], names=names, stop_early=True)
        acts = {layer: transcoders.encode(layer, cache[name]) for layer, name in zip(layers, names, strict=True)}
        for i, (layer, index) in enumerate(wanted):
            a = acts[layer][..., index].float()
            if contexts.has_bos and transcoders.cfg.exclude_bos:
                a[:, 0] = 0
            per_feature[i].append(a)
    out: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for (layer, index), parts in zip(wanted, per_feature, strict=True):
        a = torch.cat(parts)
        best = torch.argsort(a.max(1).values, descending=True)[:k]
        out[layer, index] = [
            {
                "tokens": [process_token(t) for t in model.to_str_tokens(tokens[row])],
                "activations": [float(v) for v in a[row]],
            }
            for row in best.tolist()
            if float(a[row].max()) > 0
        ]
    return out
