"""The attribution graph of one prompt: its settings, its nodes and its weighted edges.

Nodes come in circuit-tracer's order: the active features (by layer, position, index), the error nodes (by
layer, then position), the embeddings (by position), then the logits (most likely first). ``adjacency[t, s]``
is the direct effect of source ``s`` on target ``t`` through the local replacement model's linear paths; only
feature and logit rows are non-zero (errors and embeddings have no inputs). ``inputs[t]`` is each target's
input (a feature's encoder pre-activation, a logit's centred value before any softcap) and ``biases[t]`` the
part of it no source explains (the input with every source at zero): ``inputs = adjacency.sum(1) + biases``
when every active feature is a node; under ``GraphConfig.max_feature_nodes`` the features left out contribute
``uncomputed``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

import torch

from circuitscope.errors import OptionError

__all__ = ["MAX_FEATURE_NODES", "NODE_KINDS", "AttributionGraph", "GraphConfig", "GraphNode", "NodeKind"]

NodeKind = Literal["feature", "error", "embedding", "logit"]
NODE_KINDS: tuple[str, ...] = get_args(NodeKind)
MAX_FEATURE_NODES = 1024
"""The default cap on feature nodes (:attr:`GraphConfig.max_feature_nodes`)."""


@dataclass(frozen=True)
class GraphConfig:
    """How an attribution graph is built."""

    max_logits: int = 10
    """At most this many logit nodes."""
    logit_probability: float = 0.95
    """Logit nodes for the most likely next tokens until their probabilities add up to this."""
    batch_size: int = 16
    """Targets per backward pass (the forward pass runs this many copies of the prompt once)."""
    target: str | None = None
    """A next token to attribute whatever its probability (one token of the vocabulary; its logit comes first)."""
    memory_gb: float = 4.0
    """Refuse prompts whose graph is estimated to need more memory than this (graphs/budget.py)."""
    max_feature_nodes: int | None = MAX_FEATURE_NODES
    """At most this many feature nodes: the rows of the features most influential on the logits are computed
    first (the influence estimated from the rows computed so far) and only those features become nodes; ``None``:
    every active feature. The default keeps a 12-16 token prompt on Gemma-3-270M (about 576 active features
    per token with k = 32 on 18 layers) within a minute on 2 CPU cores; see docs/graphs.md."""
    update_interval: int = 4
    """Backward passes of feature rows between two estimates of the features' influence (under the cap)."""

    def __post_init__(self) -> None:
        cap = self.max_feature_nodes
        wrong = {
            "max_logits must be a positive integer": isinstance(self.max_logits, int) and self.max_logits >= 1,
            "logit_probability must be in (0, 1]": 0.0 < self.logit_probability <= 1.0,
            "batch_size must be a positive integer": isinstance(self.batch_size, int) and self.batch_size >= 1,
            "memory_gb must be positive": self.memory_gb > 0,
            "max_feature_nodes must be a positive integer or None (every feature)": cap is None
            or (isinstance(cap, int) and cap >= 1),
            "update_interval must be a positive integer": isinstance(self.update_interval, int)
            and self.update_interval >= 1,
        }
        for message, ok in wrong.items():
            if not ok:
                field_name = message.split()[0]
                raise OptionError(f"{message}, got {getattr(self, field_name)!r}")


@dataclass(frozen=True)
class GraphStats:
    """What building the graph took.

    The time of the forward passes (the real one and the replacement model's), of one backward pass on average,
    and of the whole; the backward passes' count.
    """

    backward_batches: int
    """Backward passes (each injects up to ``batch_size`` targets)."""
    seconds_forward: float
    """The real forward pass, the memory check and the replacement model's forward pass."""
    seconds_per_batch: float
    """Mean time of one backward pass (edges read off included)."""
    seconds_ranking: float
    """The estimates of the features' influence between backward passes (0 without a cap)."""
    seconds: float
    """All of it."""

    def to_json(self) -> dict[str, Any]:
        return {"backward_batches": self.backward_batches, "seconds_forward": self.seconds_forward,
                "seconds_per_batch": self.seconds_per_batch, "seconds_ranking": self.seconds_ranking,
                "seconds": self.seconds}  # fmt: skip


@dataclass(frozen=True)
class GraphNode:
    """One node of an attribution graph: a feature, an error, an embedding or a logit, where it sits, and
    what the viewer shows of it."""

    kind: NodeKind
    """``feature``, ``error``, ``embedding`` or ``logit``."""
    layer: int
    """A feature's or error's layer; -1 for an embedding; ``n_layers`` for a logit."""
    position: int
    """The prompt position (a logit's: the last)."""
    index: int
    """A feature's index in its transcoder; the token id of an embedding or a logit; -1 for an error."""
    activation: float = 0.0
    """A feature's activation (0 for the other kinds)."""
    probability: float = 0.0
    """A logit's next-token probability (0 for the other kinds)."""
    token: str = ""
    """The token of an embedding or a logit ('' for the other kinds)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AttributionGraph:
    """Nodes, direct-effect adjacency (targets x sources), target inputs and biases of one prompt."""

    prompt: str
    """The prompt's text."""
    tokens: list[int]
    """Its token ids."""
    str_tokens: list[str]
    """Its tokens as text."""
    nodes: list[GraphNode]
    """Features, errors, embeddings, logits (see the module)."""
    adjacency: torch.Tensor
    """[n_nodes, n_nodes], row = target, column = source."""
    inputs: torch.Tensor
    """[n_nodes]: each target's input (0 for errors and embeddings)."""
    biases: torch.Tensor
    """[n_nodes]: the part of each input no source explains."""
    uncomputed: torch.Tensor
    """[n_nodes]: the part of each input from active features that are not nodes (over
    ``config.max_feature_nodes``; 0 when every active feature is a node): ``inputs = adjacency.sum(1) + biases +
    uncomputed``. As in circuit-tracer these features' edges are left out of the graph, its pruning and its
    scores."""
    n_active_features: int
    """The features active on the prompt (the feature nodes are the most influential ones of these)."""
    n_layers: int
    """The model's layers."""
    d_sae: int
    """Features per layer of the transcoders."""
    model_name: str
    """The model (its hub id or folder)."""
    transcoders_name: str
    """The transcoders (what the viewer JSON calls the scan)."""
    config: GraphConfig
    """How the graph was built."""
    stats: GraphStats | None = field(default=None, compare=False)

    def count(self, kind: NodeKind) -> int:
        return sum(1 for n in self.nodes if n.kind == kind)

    @property
    def n_features(self) -> int:
        return self.count("feature")

    @property
    def n_logits(self) -> int:
        return self.count("logit")

    @property
    def n_errors(self) -> int:
        return self.n_layers * len(self.tokens)

    @property
    def logit_tokens(self) -> list[int]:
        return [n.index for n in self.nodes if n.kind == "logit"]

    @property
    def logit_probabilities(self) -> torch.Tensor:
        return torch.tensor([n.probability for n in self.nodes if n.kind == "logit"])

    def to_json(self) -> dict[str, Any]:
        targets, sources = torch.nonzero(self.adjacency, as_tuple=True)
        weights = self.adjacency[targets, sources]
        return {
            "prompt": self.prompt,
            "tokens": self.tokens,
            "str_tokens": self.str_tokens,
            "n_layers": self.n_layers,
            "d_sae": self.d_sae,
            "model": self.model_name,
            "transcoders": self.transcoders_name,
            "config": asdict(self.config),
            "nodes": [n.to_json() for n in self.nodes],
            "edges": [[int(t), int(s), float(w)] for t, s, w in zip(targets, sources, weights, strict=True)],
            "inputs": self.inputs.tolist(),
            "biases": self.biases.tolist(),
            "uncomputed": self.uncomputed.tolist(),
            "n_active_features": self.n_active_features,
            "stats": None if self.stats is None else self.stats.to_json(),
        }
