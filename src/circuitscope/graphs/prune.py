"""Pruning an attribution graph by influence on the logits, and its replacement and completeness scores.

As circuit-tracer defines them (``circuit_tracer/graph.py``). The adjacency is normalised row by row to
``|A| / sum |A|`` (each target's inputs as fractions); a node's **influence** is the total, over every path,
of the products of those fractions from it to the logits, each logit weighted by its probability:
``w (A + A^2 + ...)``. Nodes are kept, most influential first, until ``node_threshold`` of the total influence
(embeddings and logits always); edges of the graph on the kept nodes, scored by their normalised weight times
their target's influence (plus its logit weight), are kept until ``edge_threshold`` of the total edge score;
then feature and error nodes without a kept outgoing edge, and features without a kept incoming one, are
dropped, repeatedly, until nothing changes.

**Replacement score**: of the influence reaching the logits from the graph's inputs (embeddings and errors),
the fraction from the embeddings. **Completeness score**: the fraction of each node's normalised input that does
not come from error nodes, averaged over the nodes weighted by their influence (plus their logit weight). Both
are 1 for a graph without errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from circuitscope.errors import OptionError
from circuitscope.graphs.graph import AttributionGraph

__all__ = [
    "GraphCounts",
    "GraphScores",
    "PrunedGraph",
    "graph_counts",
    "graph_scores",
    "node_influence",
    "normalized_rows",
    "partial_influence",
    "prune_graph",
]


def _normalized(matrix: torch.Tensor) -> torch.Tensor:
    a = matrix.abs()
    return a / a.sum(1, keepdim=True).clamp(min=1e-10)


def _influence(a: torch.Tensor, weights: torch.Tensor, max_iter: int = 1000) -> torch.Tensor:
    """``weights @ (A + A^2 + ...)`` for a nilpotent ``A`` (a graph without cycles)."""
    return _propagate(a, torch.arange(a.shape[0]), weights, max_iter)


def _propagate(rows: torch.Tensor, row_nodes: torch.Tensor, weights: torch.Tensor, max_iter: int) -> torch.Tensor:
    """``weights @ (A + A^2 + ...)`` where ``A``'s row ``row_nodes[i]`` is ``rows[i]`` and the other rows are 0."""
    current = weights[row_nodes] @ rows
    total = current.clone()
    for _ in range(max_iter):
        if not bool(current.any()):
            return total
        current = current[row_nodes] @ rows
        total += current
    raise RuntimeError(f"influence did not converge in {max_iter} steps: the graph has a cycle")


def partial_influence(
    rows: torch.Tensor, row_nodes: torch.Tensor, weights: torch.Tensor, *, normalized: bool = False
) -> torch.Tensor:
    """Each node's influence on the logits through the rows computed so far (circuit-tracer's
    ``compute_partial_influences``): ``rows`` [m, n_nodes] are the adjacency rows of nodes ``row_nodes`` [m]
    (the others unknown, taken as 0; ``normalized``: already divided by their absolute sums, as
    :func:`normalized_rows` does), ``weights`` [n_nodes] the logits' probabilities. With every row known it is
    :func:`node_influence`."""
    return _propagate(rows if normalized else _normalized(rows), row_nodes, weights, 1000)


def normalized_rows(rows: torch.Tensor) -> torch.Tensor:
    """``|rows|`` divided by each row's sum: each target's inputs as fractions."""
    return _normalized(rows)


def _logit_weights(graph: AttributionGraph) -> torch.Tensor:
    w = torch.zeros(graph.adjacency.shape[0], dtype=graph.adjacency.dtype)
    w[-graph.n_logits :] = graph.logit_probabilities.to(w.dtype)
    return w


def node_influence(graph: AttributionGraph) -> torch.Tensor:
    """Each node's influence on the logits, [n_nodes]."""
    return _influence(_normalized(graph.adjacency), _logit_weights(graph))


def _threshold(scores: torch.Tensor, fraction: float) -> torch.Tensor:
    """The score above which the highest scores hold ``fraction`` of the total."""
    ordered = torch.sort(scores, descending=True).values
    cumulative = torch.cumsum(ordered, 0) / ordered.sum()
    index = min(int(torch.searchsorted(cumulative, torch.tensor(fraction, dtype=cumulative.dtype))), len(ordered) - 1)
    return ordered[index]


@dataclass(frozen=True)
class PrunedGraph:
    """Which nodes and edges pruning keeps, and each node's cumulative influence."""

    node_mask: torch.Tensor
    """[n_nodes] bool."""
    edge_mask: torch.Tensor
    """[n_nodes, n_nodes] bool, like the adjacency (target, source)."""
    cumulative_influence: torch.Tensor
    """[n_nodes]: the fraction of the total influence held by the nodes at least as influential as this one."""
    node_threshold: float
    edge_threshold: float

    def to_json(self) -> dict[str, Any]:
        return {
            "node_threshold": self.node_threshold,
            "edge_threshold": self.edge_threshold,
            "nodes_kept": int(self.node_mask.sum()),
            "edges_kept": int(self.edge_mask.sum()),
        }


def prune_graph(graph: AttributionGraph, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> PrunedGraph:
    """The nodes and edges that hold ``node_threshold`` / ``edge_threshold`` of the influence on the logits."""
    for name, value in (("node_threshold", node_threshold), ("edge_threshold", edge_threshold)):
        if not 0.0 <= value <= 1.0:
            raise OptionError(f"{name} must be between 0 and 1 (a fraction of the influence), got {value!r}")
    a = graph.adjacency
    n_inputs = graph.n_logits + len(graph.tokens)  # embeddings and logits, always kept, at the end
    n_f = graph.n_features
    weights = _logit_weights(graph)
    influence = node_influence(graph)
    node_mask = influence >= _threshold(influence, node_threshold)
    node_mask[-n_inputs:] = True
    kept = a.clone()
    kept[~node_mask] = 0
    kept[:, ~node_mask] = 0
    normalized = _normalized(kept)
    edge_scores = normalized * (_influence(normalized, weights) + weights)[:, None]
    edge_mask = edge_scores >= _threshold(edge_scores.flatten(), edge_threshold)
    inner = slice(0, a.shape[0] - n_inputs)  # features and errors
    while True:
        before = node_mask.clone()
        node_mask[inner] &= edge_mask[:, inner].any(0)  # an outgoing edge
        node_mask[:n_f] &= edge_mask[:n_f].any(1)  # features: an incoming edge
        edge_mask[~node_mask] = False
        edge_mask[:, ~node_mask] = False
        if torch.equal(node_mask, before):
            break
    ordered, order = torch.sort(influence, descending=True)
    cumulative = torch.zeros_like(influence)
    cumulative[order] = torch.cumsum(ordered, 0) / ordered.sum()
    return PrunedGraph(node_mask, edge_mask, cumulative, node_threshold, edge_threshold)


@dataclass(frozen=True)
class GraphCounts:
    """A graph's size before and after pruning: every node (features, errors, embeddings, logits), the feature
    nodes, the features active on the prompt (more than the feature nodes under the cap on feature nodes), the
    non-zero edges."""

    nodes: int
    features: int
    active_features: int
    edges: int
    kept: tuple[int, int]
    """The nodes and the non-zero edges pruning keeps."""

    def to_json(self) -> dict[str, Any]:
        nodes_kept, edges_kept = self.kept
        counts = {"nodes": self.nodes, "features": self.features, "active_features": self.active_features}
        return counts | {"edges": self.edges, "nodes_kept": nodes_kept, "edges_kept": edges_kept}


def graph_counts(graph: AttributionGraph, pruned: PrunedGraph) -> GraphCounts:
    """How many nodes and non-zero edges ``graph`` has, and how many ``pruned`` keeps."""
    nonzero = graph.adjacency != 0
    return GraphCounts(
        nodes=len(graph.nodes),
        features=graph.n_features,
        active_features=graph.n_active_features,
        edges=int(nonzero.sum()),
        kept=(int(pruned.node_mask.sum()), int((pruned.edge_mask & nonzero).sum())),
    )


@dataclass(frozen=True)
class GraphScores:
    """How much of the graph's explanation goes through features rather than error nodes (1 = all)."""

    replacement: float
    completeness: float

    def to_json(self) -> dict[str, Any]:
        return {"replacement": self.replacement, "completeness": self.completeness}


def graph_scores(graph: AttributionGraph) -> GraphScores:
    """The replacement and completeness scores (circuit-tracer's ``compute_graph_scores``)."""
    n_f, n_e, n_pos = graph.n_features, graph.n_errors, len(graph.tokens)
    errors, embeddings = slice(n_f, n_f + n_e), slice(n_f + n_e, n_f + n_e + n_pos)
    weights = _logit_weights(graph)
    normalized = _normalized(graph.adjacency)
    influence = _influence(normalized, weights)
    from_embeddings, from_errors = influence[embeddings].sum(), influence[errors].sum()
    replacement = from_embeddings / (from_embeddings + from_errors)
    non_error = 1 - normalized[:, errors].sum(-1)
    output = influence + weights
    completeness = (non_error * output).sum() / output.sum()
    return GraphScores(float(replacement), float(completeness))
