"""Validation by intervention: the top edges' predicted effects beside the effects of ablating their sources.

For each of the graph's strongest edges from a feature ``s`` to a target ``t``, zeroing ``s`` should move
``t``'s input by ``-weight``. :func:`validate_edges` measures that move twice:

- in the **replacement model** (graphs/replacement.py) with ``s``'s activation at zero and everything else
  frozen: this is the edge's definition, so it equals ``-weight`` up to rounding;
- in the **real model** with :class:`~circuitscope.transcoders.edit.FeatureEdit` zeroing ``s`` at its position:
  attention, norms and every later MLP respond, so the difference from ``-weight`` is what the linear, frozen
  picture leaves out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch

from circuitscope.graphs.files import node_id
from circuitscope.graphs.graph import AttributionGraph, GraphNode
from circuitscope.graphs.replacement import FrozenPass, Sources, local_replacement
from circuitscope.transcoders.edit import FeatureEdit

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel
    from circuitscope.transcoders.modules import TranscoderSet

__all__ = ["EdgeCheck", "EdgeValidation", "validate_edges"]


@dataclass(frozen=True)
class EdgeCheck:
    """One edge: its weight, the predicted effect of zeroing its source, and the effects measured in the
    replacement model and in the real model."""

    source: str
    """The source feature's node id."""
    target: str
    """The target's node id."""
    weight: float
    """The edge's weight (the source's direct effect on the target's input)."""
    predicted: float
    """``-weight``: the change of the target's input when the source is zeroed."""
    replacement: float
    """The change measured in the replacement model."""
    real: float
    """The change measured in the real model (the source zeroed through the transcoders)."""


@dataclass(frozen=True)
class EdgeValidation:
    """The checked edges, strongest first."""

    checks: list[EdgeCheck]

    def to_json(self) -> dict[str, Any]:
        return {"checks": [asdict(c) for c in self.checks]}


def _input(
    graph: AttributionGraph, model: HookedModel, transcoders: TranscoderSet, node: GraphNode, x: torch.Tensor
) -> float:
    """A target's input from what it reads (``x``: its layer's transcoder input, or the final normalised
    residual for a logit), [pos, d]; for a logit, before any softcap."""
    if node.kind == "feature":
        return float(transcoders.pre_acts(node.layer, x[node.position])[node.index])
    w_u = model.W_U.detach()
    u = (w_u[:, node.index] - w_u.mean(1)) * model.wiring.logit_factor()
    return float(x[node.position].to(u.dtype) @ u)


def _reads(graph: AttributionGraph, node: GraphNode, fp: FrozenPass, row: int) -> torch.Tensor:
    return (fp.final if node.kind == "logit" else fp.inputs[node.layer])[row].detach()


@torch.no_grad()
def validate_edges(
    model: HookedModel, transcoders: TranscoderSet, graph: AttributionGraph, n_edges: int = 10
) -> EdgeValidation:
    """The ``n_edges`` strongest edges from features (by absolute weight), each source zeroed in both models."""
    tokens = torch.tensor(graph.tokens, device=model.device)
    repl = local_replacement(model, transcoders, tokens)
    n_f = graph.n_features
    a = graph.adjacency[:, :n_f].abs()
    order = torch.argsort(a.flatten(), descending=True)[:n_edges]
    pairs = [(int(i) // n_f, int(i) % n_f) for i in order if float(a.flatten()[i]) > 0]
    if not pairs:
        return EdgeValidation([])
    f = repl.features
    active = {key: i for i, key in enumerate(zip(f.layer.tolist(), f.position.tolist(), f.index.tolist(), strict=True))}
    acts = f.activation.expand(len(pairs) + 1, -1).clone()
    for row, (_, s) in enumerate(pairs, start=1):  # the feature node's place among the active features
        node = graph.nodes[s]
        acts[row, active[node.layer, node.position, node.index]] = 0
    fp = repl.run(model, transcoders, Sources(repl.embed, repl.errors, acts), batch=len(pairs) + 1, logits=False)
    checks = []
    hooks = sorted({transcoders.input_hook(layer) for layer in transcoders.layers} | {"ln_final.hook_normalized"})
    _, clean = model.run_with_cache(tokens[None], names=hooks)
    for row, (t, s) in enumerate(pairs, start=1):
        target, source = graph.nodes[t], graph.nodes[s]
        base = _input(graph, model, transcoders, target, _reads(graph, target, fp, 0))
        ablated = _input(graph, model, transcoders, target, _reads(graph, target, fp, row))
        name = "ln_final.hook_normalized" if target.kind == "logit" else transcoders.input_hook(target.layer)
        edit = FeatureEdit(transcoders, source.layer, (source.index,), "zero", positions=(source.position,))
        _, cache = model.run_with_cache(tokens[None], names=name, interventions=[edit])
        real = _input(graph, model, transcoders, target, cache[name][0]) - _input(
            graph, model, transcoders, target, clean[name][0]
        )
        weight = float(graph.adjacency[t, s])
        checks.append(
            EdgeCheck(
                node_id(source, graph.n_layers), node_id(target, graph.n_layers), weight, -weight, ablated - base, real
            )
        )
    return EdgeValidation(checks)
