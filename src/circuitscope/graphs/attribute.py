"""Attribution graphs: the direct effect of every source on every target in the local replacement model.

Targets are the active features (their input is the encoder pre-activation ``x @ W_enc[:, i] + b_enc[i]`` of
what their layer's transcoder reads) and the logits of the most likely next tokens (their input is the logit
minus the mean logit, ``final @ (W_U[:, t] - mean_v W_U) * logit_factor`` plus the centred bias). Sources are
the embeddings, the error terms and the active features. The replacement model (graphs/replacement.py) is
affine in the sources, so the direct effect of source ``s`` on target ``t`` is the gradient of ``t``'s input
at the point where ``s`` writes, dotted with what ``s`` writes there: the embedding vector, the error vector,
or the feature's activation times its decoder row (cross-layer: summed over the layers it writes to).

One forward pass runs ``batch_size`` copies of the prompt and keeps its graph; each backward pass injects one
target's input direction per copy (its encoder column at its layer and position, or its centred unembedding at
the last position) and reads every source's edge to it off the gradients: ``ceil(targets / batch_size)``
backward passes in all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from circuitscope.engine.batching import batch_slices
from circuitscope.graphs.budget import check_budget
from circuitscope.graphs.graph import AttributionGraph, GraphConfig, GraphNode, GraphStats
from circuitscope.graphs.replacement import FrozenPass, LocalReplacement, Sources, check_replaceable, local_replacement
from circuitscope.progress import OnProgress, track

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel
    from circuitscope.transcoders.modules import TranscoderSet

__all__ = ["attribution_graph", "logit_targets"]


@dataclass(frozen=True)
class _Target:
    layer: int
    """The layer whose transcoder input the target reads; -1: the final normalised residual (a logit)."""
    position: int
    direction: torch.Tensor
    """[d]: the input direction (an encoder column, a centred unembedding row)."""
    bias: float
    """The constant part of the input (b_enc, the centred unembedding bias)."""


def logit_targets(probs: torch.Tensor, config: GraphConfig, forced: int | None = None) -> list[int]:
    """The logit nodes' tokens: the most likely ones until ``logit_probability`` of the mass, at most
    ``max_logits`` (``forced``, the target token, first)."""
    order = torch.argsort(probs, descending=True)
    mass = torch.cumsum(probs[order], 0)
    k = int(torch.searchsorted(mass, torch.tensor(config.logit_probability, dtype=mass.dtype))) + 1
    tokens = [int(t) for t in order[: min(k, config.max_logits)]]
    if forced is None:
        return tokens
    return [forced, *[t for t in tokens if t != forced]][: config.max_logits]


def _unembedding(model: HookedModel, tokens: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred unembedding columns [k, d] and centred biases [k], times the family's logit factor."""
    w_u = model.W_U.detach()
    factor = model.wiring.logit_factor()
    directions = (w_u[:, tokens] - w_u.mean(1, keepdim=True)).T * factor
    bias = getattr(model.wiring.unembed, "bias", None)
    if not isinstance(bias, torch.Tensor):
        return directions, torch.zeros(len(tokens), dtype=directions.dtype)
    b = bias.detach()
    return directions, (b[tokens] - b.mean()) * factor


def _targets(
    repl: LocalReplacement, transcoders: TranscoderSet, model: HookedModel, logits: list[int]
) -> list[_Target]:
    f = repl.features
    out: list[_Target] = []
    for layer, pos, idx in zip(f.layer.tolist(), f.position.tolist(), f.index.tolist(), strict=True):
        w_enc, b_enc = transcoders.encoder(layer)
        out.append(_Target(layer, pos, w_enc[:, idx].detach(), float(b_enc[idx].detach())))
    directions, biases = _unembedding(model, logits)
    last = int(repl.tokens.shape[0]) - 1
    out += [_Target(-1, last, d, float(b)) for d, b in zip(directions, biases, strict=True)]
    return out


def _target_values(fp: FrozenPass, chunk: list[_Target]) -> torch.Tensor:
    """Each target's input without its constant, read on row ``i`` of the pass for target ``i`` [len(chunk)]."""
    values = []
    for row, t in enumerate(chunk):
        x = fp.final if t.layer < 0 else fp.inputs[t.layer]
        values.append(x[row, t.position] @ t.direction.to(x.dtype))
    return torch.stack(values)


class _Writes:
    """What every source writes where, to turn gradients at the write points into edge weights."""

    def __init__(self, repl: LocalReplacement, transcoders: TranscoderSet) -> None:
        self.errors = repl.errors
        self.embed = repl.embed
        self.n_features = len(repl.features)
        self.per_layer = []
        for layer in range(repl.errors.shape[0]):
            ids, rows = repl.feature_writes(transcoders, layer)
            acts = repl.features.activation[ids]
            self.per_layer.append((ids, repl.features.position[ids], rows.to(self.embed.dtype) * acts[:, None]))

    def edges(self, grad_embed: torch.Tensor, grad_writes: list[torch.Tensor]) -> torch.Tensor:
        """[batch, features + errors + embeddings]: each row's edges from every source, in node order."""
        batch = grad_embed.shape[0]
        features = torch.zeros(batch, self.n_features, dtype=grad_embed.dtype)
        for (ids, pos, vectors), g in zip(self.per_layer, grad_writes, strict=True):
            if len(ids):  # every feature's vector against every position's gradient (one product), then its own
                dots = g @ vectors.T  # [batch, pos, k]
                features.index_add_(1, ids, dots[:, pos, torch.arange(len(ids))])
        errors = torch.stack([(g * e).sum(-1) for g, e in zip(grad_writes, self.errors, strict=True)], 1)
        embeddings = (grad_embed * self.embed).sum(-1)
        return torch.cat([features, errors.flatten(1), embeddings], 1)


def _nodes(model: HookedModel, repl: LocalReplacement, logits: list[int], probs: torch.Tensor) -> list[GraphNode]:
    f = repl.features
    n_layers, n_pos = repl.errors.shape[0], int(repl.tokens.shape[0])
    nodes = [
        GraphNode("feature", layer, pos, idx, activation=act)
        for layer, pos, idx, act in zip(
            f.layer.tolist(), f.position.tolist(), f.index.tolist(), f.activation.tolist(), strict=True
        )
    ]
    nodes += [GraphNode("error", layer, pos, -1) for layer in range(n_layers) for pos in range(n_pos)]
    text = _token_texts(model, repl.tokens.tolist())
    nodes += [GraphNode("embedding", -1, pos, int(t), token=text[pos]) for pos, t in enumerate(repl.tokens.tolist())]
    nodes += [
        GraphNode("logit", n_layers, n_pos - 1, t, probability=float(probs[t]), token=_token_texts(model, [t])[0])
        for t in logits
    ]
    return nodes


def _token_texts(model: HookedModel, ids: list[int]) -> list[str]:
    if model.tokenizer is None:
        return [str(i) for i in ids]
    return [model.tokenizer.decode([i]) for i in ids]


def _prompt_tokens(model: HookedModel, prompt: str | torch.Tensor) -> tuple[str, torch.Tensor]:
    if isinstance(prompt, str):
        return prompt, model.to_tokens(prompt)[0]
    tokens = prompt.flatten().long()
    text = model.tokenizer.decode(tokens.tolist()) if model.tokenizer is not None else ""
    return text, tokens


def _adjacency(
    fp: FrozenPass,
    writes: _Writes,
    targets: list[_Target],
    rows: list[int],
    n: int,
    batch: int,
    on_progress: OnProgress | None,
) -> tuple[torch.Tensor, int]:
    """The adjacency [n, n] (the targets' rows filled in, ``batch`` targets per backward pass) and the number of
    backward passes."""
    dtype = torch.promote_types(writes.embed.dtype, torch.float32)
    adjacency = torch.zeros(n, n, dtype=dtype)
    chunks = batch_slices(len(targets), batch)
    points = [fp.embed, *fp.writes]
    for piece in track(chunks, "attribution graph: backward passes", on_progress):
        chunk = targets[piece]
        grads = torch.autograd.grad(_target_values(fp, chunk).sum(), points, retain_graph=True, allow_unused=True)
        g_embed, *g_writes = (torch.zeros_like(t) if g is None else g for g, t in zip(grads, points, strict=True))
        edges = writes.edges(g_embed, g_writes)[: len(chunk)]
        adjacency[rows[piece], : edges.shape[1]] = edges.detach().to(dtype)
    return adjacency, len(chunks)


def attribution_graph(
    model: HookedModel,
    transcoders: TranscoderSet,
    prompt: str | torch.Tensor,
    config: GraphConfig | None = None,
    *,
    transcoders_name: str = "",
    on_progress: OnProgress | None = None,
) -> AttributionGraph:
    """The attribution graph of ``prompt`` (text, or a 1-d tensor of token ids) for the next token.

    Refused before any work: a model the replacement cannot freeze, transcoders of another model or layer set,
    a ``config.target`` that is not one token. Refused after the one real forward pass that counts the active
    features, before the backward passes: a prompt whose graph would not fit ``config.memory_gb``
    (graphs/budget.py; the message says how long a prompt fits).
    """
    cfg = config or GraphConfig()
    check_replaceable(model, transcoders)
    forced = model.to_single_token(cfg.target) if cfg.target is not None else None
    text, tokens = _prompt_tokens(model, prompt)
    start = time.perf_counter()
    repl = local_replacement(model, transcoders, tokens.to(model.device))
    probs = torch.softmax(repl.logits[-1].double(), -1)
    logits = logit_targets(probs, cfg, forced)
    writes = max(len(transcoders.decoders(layer)) for layer in transcoders.layers)
    check_budget(model.cfg, len(tokens), len(repl.features), len(logits), cfg.batch_size, cfg.memory_gb, writes)
    targets = _targets(repl, transcoders, model, logits)
    n_f, n = len(repl.features), len(repl.features) + (model.cfg.n_layers + 1) * len(tokens) + len(logits)
    batch = min(cfg.batch_size, len(targets))
    fp = repl.run(model, transcoders, batch=batch, logits=False)
    forward = time.perf_counter() - start
    rows = [*range(n_f), *range(n - len(logits), n)]
    began = time.perf_counter()
    adjacency, n_batches = _adjacency(fp, _Writes(repl, transcoders), targets, rows, n, batch, on_progress)
    per_batch = (time.perf_counter() - began) / max(n_batches, 1)
    inputs, biases = _inputs_and_biases(model, transcoders, repl, targets, fp, n, rows)
    del fp
    stats = GraphStats(n_batches, forward, per_batch, time.perf_counter() - start)
    return AttributionGraph(
        prompt=text,
        tokens=repl.tokens.tolist(),
        str_tokens=_token_texts(model, repl.tokens.tolist()),
        nodes=_nodes(model, repl, logits, probs),
        adjacency=adjacency,
        inputs=inputs,
        biases=biases,
        n_layers=model.cfg.n_layers,
        d_sae=transcoders.cfg.d_sae,
        model_name=getattr(model.hf_model.config, "_name_or_path", "") or model.cfg.family,
        transcoders_name=transcoders_name,
        config=cfg,
        stats=stats,
    )


def _inputs_and_biases(
    model: HookedModel,
    transcoders: TranscoderSet,
    repl: LocalReplacement,
    targets: list[_Target],
    fp: FrozenPass,
    n: int,
    rows: list[int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each target's input on the prompt (row 0 of the pass, with the recorded sources) and with every source at
    zero (one more forward pass of the replacement model)."""
    zero = Sources(
        torch.zeros_like(repl.embed), torch.zeros_like(repl.errors), torch.zeros_like(repl.features.activation)
    )
    with torch.no_grad():
        empty = repl.run(model, transcoders, zero, logits=False)
        inputs = torch.zeros(n, dtype=torch.promote_types(repl.embed.dtype, torch.float32))
        biases = torch.zeros_like(inputs)
        for row, t in zip(rows, targets, strict=True):
            x, x0 = (fp.final, empty.final) if t.layer < 0 else (fp.inputs[t.layer], empty.inputs[t.layer])
            d = t.direction.to(x.dtype)
            inputs[row] = float(x[0, t.position] @ d) + t.bias
            biases[row] = float(x0[0, t.position] @ d) + t.bias
    return inputs, biases
