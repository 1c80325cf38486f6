"""Max-activating examples of MLP neurons and attention heads over a corpus.

A unit's activation at one token position is

- a **neuron** ``(layer, index)``: ``blocks.{layer}.mlp.hook_post[..., index]``, the MLP activation
  (input of the output projection);
- a **head** ``(layer, head)``: the L2 norm of ``blocks.{layer}.attn.hook_result[..., head, :]``,
  the vector the head writes into the residual stream at that position (after Gemma's
  post-attention norm, with its scale frozen at the value for the whole attention output).

For each unit the result keeps the ``k`` (document, position) pairs with the highest
activation, ties broken by corpus order (earlier document, then earlier position, first).
The scan runs one forward pass per batch; hooks fold each batch into a running top-k per unit,
so no activation tensor outlives its batch, and the forward pass stops after the deepest
layer any unit needs.

Corpus: a list of texts or a token tensor ``[n_docs, pos]``. Texts are tokenized without
special tokens and cut into windows of at most ``window`` tokens, each run with the model's
BOS in front when it uses one (the BOS position is never scored); positions are token
indices within the document. A token tensor is run row by row as given (each row at most
``n_ctx`` long) and every position is scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from jaxtyping import Float, Int

from circuitscope.engine.batching import batch_slices, batched
from circuitscope.errors import ShapeError
from circuitscope.progress import OnProgress, track

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = [
    "ActivatingExample",
    "MaxActivating",
    "Unit",
    "activations_of",
    "max_activating",
]


@dataclass(frozen=True)
class Unit:
    """A neuron or a head."""

    kind: Literal["neuron", "head"]
    """``neuron`` (an MLP activation) or ``head`` (the norm of a head's output)."""
    layer: int
    """Block index."""
    index: int
    """Neuron index in the MLP, or head index."""

    @property
    def label(self) -> str:
        """``L3N117`` for a neuron, ``L5H1`` for a head."""
        return f"L{self.layer}{'N' if self.kind == 'neuron' else 'H'}{self.index}"

    @property
    def hook(self) -> str:
        return f"blocks.{self.layer}.{'mlp.hook_post' if self.kind == 'neuron' else 'attn.hook_result'}"


@dataclass(frozen=True)
class ActivatingExample:
    """One of a unit's top positions, with the tokens around it."""

    doc: int
    """Index of the document (text or token row) in the corpus."""
    pos: int
    """Token position in the document."""
    activation: float
    """The unit's activation there."""
    context: list[str]
    """Tokens around the position (as text; token ids as text for a model without tokenizer)."""
    highlight: int
    """Index of the position itself in ``context``."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MaxActivating:
    """The top examples of every unit."""

    units: list[Unit]
    """The units, in the order asked for."""
    examples: dict[str, list[ActivatingExample]]
    """Per unit label, its examples from the highest activation down (fewer than ``k`` if the corpus is short)."""
    k: int
    """Examples kept per unit."""
    n_positions: int
    """Number of positions scanned."""

    def __getitem__(self, unit: str | Unit) -> list[ActivatingExample]:
        return self.examples[unit.label if isinstance(unit, Unit) else unit]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"k", "n_positions", "units": {label: [example, ...]}}``."""
        return {
            "k": self.k,
            "n_positions": self.n_positions,
            "units": {u.label: [e.to_dict() for e in self.examples[u.label]] for u in self.units},
        }


# ---------------------------------------------------------------------------- the running top-k
class _TopK:
    """The k largest values seen so far with their corpus keys (ties: smaller key first)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.values = torch.empty(0)
        self.keys = torch.empty(0, dtype=torch.long)

    def update(self, values: torch.Tensor, keys: torch.Tensor) -> None:
        v = torch.cat([self.values, values.detach().float().cpu()])
        key = torch.cat([self.keys, keys])
        order = torch.sort(key, stable=True).indices  # corpus order first ...
        v, key = v[order], key[order]
        order = torch.sort(v, descending=True, stable=True).indices[: self.k]  # ... then by value, stably
        self.values, self.keys = v[order], key[order]


def _documents(model: HookedModel, corpus: Sequence[str] | torch.Tensor) -> tuple[list[list[int]], bool]:
    """Token ids of each document, and whether they come from texts (BOS windows) or a tensor (as given)."""
    if isinstance(corpus, torch.Tensor):
        if corpus.ndim != 2:
            raise ShapeError(f"a token corpus must be [n_docs, pos], got shape {tuple(corpus.shape)}")
        if corpus.shape[1] > model.cfg.n_ctx:
            raise ShapeError(f"token rows of {corpus.shape[1]} exceed the model's context of {model.cfg.n_ctx}")
        return [row.tolist() for row in corpus], False
    if isinstance(corpus, str):
        raise TypeError("pass a list of texts (or a token tensor), not a single string")
    return [model.tok.encode(text, prepend_bos=False) for text in corpus], True


def _windows(
    docs: list[list[int]], from_text: bool, window: int, bos: int | None
) -> list[tuple[int, int, list[int], int]]:
    """``(doc, offset, ids, n_prefix)``: the pieces to run; ``n_prefix`` leading positions are not scored."""
    out = []
    for d, ids in enumerate(docs):
        if not from_text:
            out.append((d, 0, ids, 0))
            continue
        step = window - (bos is not None)
        for part in batch_slices(len(ids), step):
            start, piece = part.start, ids[part]
            out.append((d, start, piece, 0) if bos is None else (d, start, [bos, *piece], 1))
    return [w for w in out if len(w[2]) > w[3]]


def _unit_values(unit: Unit, act: torch.Tensor) -> torch.Tensor:
    """The unit's activation [batch, pos] from its hook's tensor."""
    if unit.kind == "neuron":
        return act[..., unit.index]  # hook_post: [batch, pos, d_mlp]
    return act[:, :, unit.index].float().norm(dim=-1)  # hook_result: [batch, pos, head, d_model]


def _units(model: HookedModel, neurons: Sequence[tuple[int, int]], heads: Sequence[tuple[int, int]]) -> list[Unit]:
    cfg = model.cfg
    units = []
    for layer, index in neurons:
        model.check_layer_head(layer)
        if not 0 <= index < cfg.d_mlp:
            raise ShapeError(f"neuron {index} of layer {layer} is out of range: the MLP has {cfg.d_mlp} neurons")
        units.append(Unit("neuron", layer % cfg.n_layers, index))
    for layer, head in heads:
        model.check_layer_head(layer, head)
        units.append(Unit("head", layer % cfg.n_layers, head % cfg.n_heads))
    if not units:
        raise ValueError("no units given: pass neurons=[(layer, index), ...] and/or heads=[(layer, head), ...]")
    return list(dict.fromkeys(units))


def max_activating(
    model: HookedModel,
    corpus: Sequence[str] | Int[torch.Tensor, "doc pos"],
    neurons: Sequence[tuple[int, int]] = (),
    heads: Sequence[tuple[int, int]] = (),
    *,
    k: int = 10,
    context: tuple[int, int] = (10, 4),
    window: int = 128,
    batch_size: int = 8,
    on_progress: OnProgress | None = None,
) -> MaxActivating:
    """The ``k`` top (document, position) of each neuron and head over ``corpus`` (see the module docstring).

    ``context`` is the number of tokens shown (before, after) each position; ``window`` the
    longest piece of a text run at once (capped at the model's context). ``on_progress(stage, done, total)``
    is told each batch scanned (stage ``max-activating examples``; default: a progress bar on stderr).
    """
    if k < 1 or batch_size < 1:
        raise ValueError(f"k and batch_size must be at least 1, got k={k}, batch_size={batch_size}")
    if context[0] < 0 or context[1] < 0:
        raise ValueError(f"context must be (tokens before, tokens after) >= 0, got {context}")
    units = _units(model, neurons, heads)
    docs, from_text = _documents(model, corpus)
    bos = model.tok.bos_token_id if from_text and model.tok.default_prepend_bos else None
    window = min(window, model.cfg.n_ctx)
    if window < 1 + (bos is not None):
        raise ValueError(f"window must leave room for at least one scored token, got {window}")
    pieces = _windows(docs, from_text, window, bos)
    if not pieces:
        raise ShapeError("the corpus has no tokens to scan")
    stride = max(len(ids) for ids in docs) + 1  # key = doc * stride + pos orders the corpus
    tops = {u.label: _TopK(k) for u in units}
    by_depth = sorted(units, key=lambda u: (u.layer, u.kind == "neuron"))  # an MLP comes after its layer's attention
    hooks_needed = list(dict.fromkeys(u.hook for u in by_depth))
    pad = model.tok.pad_token_id if model.tokenizer is not None else 0
    n_positions = 0
    for batch in track(batched(pieces, batch_size), "max-activating examples", on_progress):
        tokens, mask, keys, scored = _batch_tensors(batch, stride, pad)
        n_positions += int(scored.sum())
        flat_keys = keys[scored]

        def fold(
            act: torch.Tensor, hook: Any, scored: torch.Tensor = scored, flat_keys: torch.Tensor = flat_keys
        ) -> None:
            for unit in units:
                if unit.hook == hook.name:
                    tops[unit.label].update(_unit_values(unit, act).detach().cpu()[scored], flat_keys)

        attention_mask = None if bool(mask.all()) else mask
        with torch.no_grad():
            model.run_with_cache(
                tokens,
                names=hooks_needed[-1],  # the deepest: the forward pass stops there
                stop_early=True,
                fwd_hooks=[(name, fold) for name in hooks_needed],
                attention_mask=attention_mask,
            )
    examples = {u.label: _examples_of(model, tops[u.label], docs, stride, context) for u in units}
    return MaxActivating(units=units, examples=examples, k=k, n_positions=n_positions)


def _batch_tensors(
    batch: list[tuple[int, int, list[int], int]], stride: int, pad: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(tokens, attention mask, corpus keys, scored)`` of a batch of pieces, padded on the right."""
    width = max(len(ids) for _, _, ids, _ in batch)
    tokens = torch.full((len(batch), width), pad, dtype=torch.long)
    mask = torch.zeros(len(batch), width, dtype=torch.long)
    keys = torch.zeros(len(batch), width, dtype=torch.long)
    scored = torch.zeros(len(batch), width, dtype=torch.bool)
    for row, (d, offset, ids, n_prefix) in enumerate(batch):
        tokens[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
        scored[row, n_prefix : len(ids)] = True
        keys[row, : len(ids)] = d * stride + offset + torch.arange(len(ids)) - n_prefix
    return tokens, mask, keys, scored


def _examples_of(
    model: HookedModel, top: _TopK, docs: list[list[int]], stride: int, context: tuple[int, int]
) -> list[ActivatingExample]:
    """A unit's top positions as examples, with ``context`` = (before, after) tokens around each."""
    before, after = context
    rows = []
    for value, key in zip(top.values.tolist(), top.keys.tolist(), strict=True):
        d, pos = divmod(int(key), stride)
        lo, hi = max(0, pos - before), min(len(docs[d]), pos + after + 1)
        context_tokens = _str_tokens(model, docs[d][lo:hi])
        rows.append(
            ActivatingExample(doc=d, pos=pos, activation=float(value), context=context_tokens, highlight=pos - lo)
        )
    return rows


def _str_tokens(model: HookedModel, ids: list[int]) -> list[str]:
    if model.tokenizer is None:
        return [str(i) for i in ids]
    return [str(t) for t in model.to_str_tokens(torch.tensor(ids, dtype=torch.long), prepend_bos=False)]


def activations_of(
    model: HookedModel, tokens: Int[torch.Tensor, "batch pos"], unit: Unit
) -> Float[torch.Tensor, "batch pos"]:
    """The unit's activation at every position of ``tokens`` (one forward pass; for checks and small inputs)."""
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names=unit.hook, stop_early=True)
    return _unit_values(unit, cache[unit.hook]).float().cpu()
