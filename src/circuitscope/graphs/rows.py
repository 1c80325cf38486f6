"""The rows of an attribution graph's adjacency: each target's edges from every source, by backward passes.

Targets are the active features (their input is the encoder pre-activation ``x @ W_enc[:, i] + b_enc[i]`` of
what their layer's transcoder reads) and the logits of the most likely next tokens (their input is the logit
minus the mean logit, ``final @ (W_U[:, t] - mean_v W_U) * logit_factor`` plus the centred bias). Sources are
the active features, the error terms and the embeddings. The replacement model (graphs/replacement.py) is
affine in the sources, so the direct effect of source ``s`` on target ``t`` is the gradient of ``t``'s input
at the point where ``s`` writes, dotted with what ``s`` writes there: the embedding vector, the error vector,
or the feature's activation times its decoder row (cross-layer: summed over the layers it writes to).

:class:`RowReader` holds one forward pass of ``batch`` copies of the prompt (its graph kept); each call injects
one target's input direction per copy (its encoder column at its layer and position, or its centred
unembedding at the last position) and reads every source's edge to it off the gradients, one backward pass
for up to ``batch`` targets. A backward pass only runs through the layers below its deepest target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from circuitscope.graphs.replacement import FrozenPass, LocalReplacement

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel
    from circuitscope.transcoders.modules import TranscoderSet

__all__ = ["RowReader", "Targets", "graph_targets", "unembedding_directions"]


@dataclass(frozen=True)
class Targets:
    """Every target of the graph: the active features (in :class:`ActiveFeatures` order), then the logits."""

    layer: torch.Tensor
    """[m]: the layer whose transcoder input the target reads; -1: the final normalised residual (a logit)."""
    position: torch.Tensor
    """[m]: the prompt position it reads."""
    direction: torch.Tensor
    """[m, d]: its input direction (an encoder column, a centred unembedding row)."""
    bias: torch.Tensor
    """[m]: the constant part of its input (``b_enc``, the centred unembedding bias)."""

    def __len__(self) -> int:
        return int(self.layer.shape[0])


def unembedding_directions(model: HookedModel, tokens: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred unembedding columns [k, d] and centred biases [k], times the family's logit factor."""
    w_u = model.W_U.detach()
    factor = model.wiring.logit_factor()
    directions = (w_u[:, tokens] - w_u.mean(1, keepdim=True)).T * factor
    bias = getattr(model.wiring.unembed, "bias", None)
    if not isinstance(bias, torch.Tensor):
        return directions, torch.zeros(len(tokens), dtype=directions.dtype)
    b = bias.detach()
    return directions, (b[tokens] - b.mean()) * factor


def graph_targets(repl: LocalReplacement, transcoders: TranscoderSet, model: HookedModel, logits: list[int]) -> Targets:
    """The features' encoder columns and biases (gathered per layer) and the logits' centred unembeddings."""
    f = repl.features
    n, d = len(f), transcoders.cfg.d_in
    directions, biases = unembedding_directions(model, logits)
    direction = torch.zeros(n + len(logits), d, dtype=directions.dtype)
    bias = torch.zeros(n + len(logits), dtype=directions.dtype)
    for layer in transcoders.layers:
        ids = torch.nonzero(f.layer == layer).flatten()
        if len(ids):
            w_enc, b_enc = transcoders.encoder(layer)
            direction[ids] = w_enc.detach()[:, f.index[ids]].T.to(direction.dtype)
            bias[ids] = b_enc.detach()[f.index[ids]].to(bias.dtype)
    direction[n:], bias[n:] = directions, biases
    last = int(repl.tokens.shape[0]) - 1
    layer = torch.cat([f.layer, torch.full((len(logits),), -1, dtype=f.layer.dtype)])
    position = torch.cat([f.position, torch.full((len(logits),), last, dtype=f.position.dtype)])
    return Targets(layer, position, direction, bias)


def target_values(fp: FrozenPass, targets: Targets, ids: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    """Target ``ids[i]``'s input without its constant, read on row ``row[i]`` of the pass [len(ids)]."""
    out: list[torch.Tensor] = []
    order: list[torch.Tensor] = []
    layers = targets.layer[ids]
    for layer in torch.unique(layers).tolist():
        picked = torch.nonzero(layers == layer).flatten()
        x = fp.final if layer < 0 else fp.inputs[layer]
        chosen = ids[picked]
        read = x[row[picked], targets.position[chosen]]
        out.append((read * targets.direction[chosen].to(x.dtype)).sum(-1))
        order.append(picked)
    values = torch.cat(out)
    return values[torch.argsort(torch.cat(order))]


class _Writes:
    """What every source writes where, to turn gradients at the write points into edge weights.

    Per layer the writing features are grouped by position, padded to the most at one position, so that every
    feature's edge is one batched product of its position's gradient with its vector (no product against the
    other positions' gradients).
    """

    def __init__(self, repl: LocalReplacement, transcoders: TranscoderSet) -> None:
        self.errors = repl.errors
        self.embed = repl.embed
        self.n_features = len(repl.features)
        n_pos = int(repl.tokens.shape[0])
        self.per_layer: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for layer in range(repl.errors.shape[0]):
            ids, rows = repl.feature_writes(transcoders, layer)
            acts = repl.features.activation[ids]
            vectors = rows.to(self.embed.dtype) * acts[:, None]
            pos = repl.features.position[ids]
            counts = torch.bincount(pos, minlength=n_pos)
            width = int(counts.max()) if len(ids) else 0
            order = torch.argsort(pos, stable=True)
            starts = torch.cumsum(counts, 0) - counts
            slot = torch.empty_like(pos)
            slot[order] = torch.arange(len(ids)) - starts[pos[order]]
            padded = torch.zeros(n_pos, width, vectors.shape[-1], dtype=vectors.dtype)
            padded[pos, slot] = vectors
            self.per_layer.append((ids, pos, slot, padded))

    def edges(self, grad_embed: torch.Tensor, grad_writes: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """[batch, features + errors + embeddings]: each row's edges from every source, in node order (a write
        point without a gradient, above every target of the pass, contributes zeros)."""
        batch, n_pos = grad_embed.shape[0], grad_embed.shape[1]
        features = torch.zeros(batch, self.n_features, dtype=grad_embed.dtype)
        errors = torch.zeros(batch, len(grad_writes), n_pos, dtype=grad_embed.dtype)
        for layer, ((ids, pos, slot, padded), g) in enumerate(zip(self.per_layer, grad_writes, strict=True)):
            if g is None:
                continue
            if len(ids):  # [pos, batch, d] x [pos, d, width]: each position's gradient against its features
                dots = torch.bmm(g.transpose(0, 1), padded.transpose(1, 2).to(g.dtype))
                features.index_add_(1, ids, dots[pos, :, slot].T)  # cross-layer: summed over its layers
            errors[:, layer] = (g * self.errors[layer]).sum(-1)
        embeddings = (grad_embed * self.embed).sum(-1)
        return torch.cat([features, errors.flatten(1), embeddings], 1)


class RowReader:
    """One forward pass of the replacement model on ``batch`` copies of the prompt, its graph kept, and the
    targets: :meth:`rows` reads the rows of up to ``batch`` targets with one backward pass."""

    def __init__(
        self, model: HookedModel, transcoders: TranscoderSet, repl: LocalReplacement, targets: Targets, batch: int
    ) -> None:
        self.targets = targets
        self.batch = batch
        self.pass_ = repl.run(model, transcoders, batch=batch, logits=False)
        self.writes = _Writes(repl, transcoders)
        self.n_sources = self.writes.n_features + self.writes.errors.shape[0] * self.writes.errors.shape[1]
        self.n_sources += self.writes.embed.shape[0]

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        """[len(ids), sources]: the edges of targets ``ids`` (at most ``batch``) from every source."""
        fp = self.pass_
        points = [fp.embed, *fp.writes]
        values = target_values(fp, self.targets, ids, torch.arange(len(ids)))
        g_embed, *g_writes = torch.autograd.grad(values.sum(), points, retain_graph=True, allow_unused=True)
        embed = torch.zeros_like(fp.embed) if g_embed is None else g_embed
        return self.writes.edges(embed, g_writes)[: len(ids)].detach()
