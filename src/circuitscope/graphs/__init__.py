"""Attribution graphs: the local replacement model of one prompt, its edges, pruning, scores and graph files."""

from circuitscope.graphs.attribute import attribution_graph, logit_targets
from circuitscope.graphs.budget import GraphSize, check_budget, estimate_bytes
from circuitscope.graphs.contexts import feature_top_contexts
from circuitscope.graphs.errors import GraphBudgetError, GraphInputError
from circuitscope.graphs.files import (
    SUBGRAPH_FORMAT,
    SUBGRAPH_VERSION,
    feature_top_logits,
    graph_json,
    node_id,
    read_subgraph,
    write_subgraph,
)
from circuitscope.graphs.graph import NODE_KINDS, AttributionGraph, GraphConfig, GraphNode, GraphStats, NodeKind
from circuitscope.graphs.prune import (
    GraphCounts,
    GraphScores,
    PrunedGraph,
    graph_counts,
    graph_scores,
    node_influence,
    prune_graph,
)
from circuitscope.graphs.replacement import ActiveFeatures, LocalReplacement, Sources, local_replacement
from circuitscope.graphs.validate import EdgeCheck, EdgeValidation, validate_edges

__all__ = [
    "NODE_KINDS",
    "SUBGRAPH_FORMAT",
    "SUBGRAPH_VERSION",
    "ActiveFeatures",
    "AttributionGraph",
    "EdgeCheck",
    "EdgeValidation",
    "GraphBudgetError",
    "GraphConfig",
    "GraphCounts",
    "GraphInputError",
    "GraphNode",
    "GraphScores",
    "GraphSize",
    "GraphStats",
    "LocalReplacement",
    "NodeKind",
    "PrunedGraph",
    "Sources",
    "attribution_graph",
    "check_budget",
    "estimate_bytes",
    "feature_top_contexts",
    "feature_top_logits",
    "graph_counts",
    "graph_json",
    "graph_scores",
    "local_replacement",
    "logit_targets",
    "node_id",
    "node_influence",
    "prune_graph",
    "read_subgraph",
    "validate_edges",
    "write_subgraph",
]
