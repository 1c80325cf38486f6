"""circuitscope's optional fields of a graph's kept feature nodes (:data:`~circuitscope.graphs.files.NodeExtras`):
each feature's top logit effects, and, from a corpus, its top activating contexts. ``circuitscope graph`` and the
explorer's graph jobs both attach them with :func:`node_extras`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from circuitscope.graphs.contexts import feature_top_contexts
from circuitscope.graphs.files import feature_top_logits, node_id

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel
    from circuitscope.graphs.graph import AttributionGraph
    from circuitscope.graphs.prune import PrunedGraph
    from circuitscope.sae.corpus import Corpus
    from circuitscope.transcoders.modules import TranscoderSet

__all__ = ["node_extras"]


def node_extras(
    model: HookedModel,
    transcoders: TranscoderSet,
    graph: AttributionGraph,
    pruned: PrunedGraph,
    corpus: Corpus | None = None,
    n_contexts: int = 0,
) -> dict[str, dict[str, Any]]:
    """By node id, each kept feature's ``top_logits`` and (given ``corpus`` and ``n_contexts`` > 0) its
    ``top_contexts`` among that many of the corpus's contexts: the ``extras`` of :func:`graph_json`."""
    kept = [n for i, n in enumerate(graph.nodes) if n.kind == "feature" and bool(pruned.node_mask[i])]
    features = {(n.layer, n.index) for n in kept}
    top = feature_top_logits(model, transcoders, features)
    found: dict[tuple[int, int], Any] = {}
    if corpus is not None and n_contexts > 0:
        found = feature_top_contexts(model, transcoders, features, corpus, n_contexts=n_contexts)
    return {
        node_id(n, graph.n_layers): {"top_logits": top[n.layer, n.index]}
        | ({"top_contexts": found[n.layer, n.index]} if (n.layer, n.index) in found else {})
        for n in kept
    }
