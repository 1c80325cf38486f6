"""The computational graph of a transformer, as circuit discovery sees it.

Axis names used across ``circuitscope.circuits``:

``sender``    a node that writes into the residual stream: the input embedding, every attention
              head, every MLP (in that order: ``input``, then per layer its heads, then its MLP).
``receiver``  a place that reads the residual stream: every head's query input, every key/value
              head's key and value inputs, every MLP's input, and the logits (per layer: the q
              inputs, the k inputs, the v inputs, the MLP input; then the logits).
``batch``, ``pos``, ``d_model`` as everywhere else.

An *edge* goes from a sender to a receiver that can read it: the sender is in an earlier layer,
or it is a head of the same layer and the receiver is that layer's MLP (not under a parallel
residual, where the MLP reads the block's input). The input reaches every receiver and every
sender reaches the logits.

The residual stream a receiver reads is the sum of its senders' outputs plus constant terms
(biases), so an edge can be ablated at its receiver alone: the receiver reads
``x - (a_u - ablated a_u)`` while every other receiver still sees ``a_u``. A receiver's input is
taken *before* its norm (the norm belongs to the receiver), as in Syed et al. 2023 and Hanna et
al. 2024.

Names follow the EAP-IG code of Hanna et al.: ``input``, ``a3.h1`` (layer 3, head 1), ``m3`` and
``logits``; receivers ``a3.h1<q>``, ``a3.h1<k>``, ``a3.h1<v>``, ``m3`` and ``logits``. Under
grouped-query attention the key and value inputs belong to a key/value head, named ``a3.kv0<k>``
(query heads ``0 .. n_heads/n_kv_heads - 1`` share it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import torch
from jaxtyping import Bool

from circuitscope.core.config import ModelConfig
from circuitscope.errors import CircuitscopeError

__all__ = ["CircuitError", "Graph", "Receiver", "Sender"]

SenderKind = Literal["input", "head", "mlp"]
ReceiverKind = Literal["q", "k", "v", "mlp", "logits"]


class CircuitError(CircuitscopeError, ValueError):
    """A circuit, graph or discovery request that cannot be used as given."""


Kind = TypeVar("Kind", SenderKind, ReceiverKind)


@dataclass(frozen=True)
class _End(Generic[Kind]):
    """One end of an edge: the fields a sender and a receiver share."""

    name: str
    """Sender: ``input``, ``a{layer}.h{head}`` or ``m{layer}``; receiver: ``a{layer}.h{head}<q>``,
    ``a{layer}.h{head}<k>`` / ``a{layer}.kv{g}<k>``, ``m{layer}`` or ``logits``."""
    kind: Kind
    """Sender: what writes (the embedding, an attention head or an MLP); receiver: the query, key or value input of
    a head, an MLP input, or the final residual stream."""
    layer: int
    """Block index (-1 for the input, ``n_layers`` for the logits)."""
    head: int | None = None
    """The head: of a head sender, the head index; of a receiver, the query head (q) or key/value head (k, v)."""


@dataclass(frozen=True)
class Sender(_End[SenderKind]):
    """A node that writes into the residual stream."""


@dataclass(frozen=True)
class Receiver(_End[ReceiverKind]):
    """A place that reads the residual stream (before its norm)."""

    @property
    def node(self) -> str:
        """The node this receiver belongs to (``a3.h1``, ``m3``, ``logits``; ``a3.kv0`` for shared k/v)."""
        return self.name.split("<")[0]


class Graph:
    """Senders, receivers and which sender can reach which receiver, for one model shape."""

    def __init__(self, n_layers: int, n_heads: int, n_kv_heads: int, parallel: bool = False) -> None:
        if n_layers < 1 or n_heads < 1 or n_kv_heads < 1 or n_heads % n_kv_heads:
            raise CircuitError(f"bad graph shape: {n_layers} layers, {n_heads} heads, {n_kv_heads} key/value heads")
        self.n_layers, self.n_heads, self.n_kv_heads, self.parallel = n_layers, n_heads, n_kv_heads, parallel
        kv_name = "h" if n_kv_heads == n_heads else "kv"
        senders = [Sender("input", "input", -1)]
        receivers: list[Receiver] = []
        self.sender_start: list[int] = []
        """Index of layer L's first head among the senders."""
        self.receiver_start: list[int] = []
        """Index of layer L's first receiver (its q inputs)."""
        for layer in range(n_layers):
            self.sender_start.append(len(senders))
            senders += [Sender(f"a{layer}.h{h}", "head", layer, h) for h in range(n_heads)]
            senders.append(Sender(f"m{layer}", "mlp", layer))
            self.receiver_start.append(len(receivers))
            receivers += [Receiver(f"a{layer}.h{h}<q>", "q", layer, h) for h in range(n_heads)]
            receivers += [Receiver(f"a{layer}.{kv_name}{g}<k>", "k", layer, g) for g in range(n_kv_heads)]
            receivers += [Receiver(f"a{layer}.{kv_name}{g}<v>", "v", layer, g) for g in range(n_kv_heads)]
            receivers.append(Receiver(f"m{layer}", "mlp", layer))
        receivers.append(Receiver("logits", "logits", n_layers))
        self.senders: list[Sender] = senders
        self.receivers: list[Receiver] = receivers
        self._sender_index = {s.name: i for i, s in enumerate(senders)}
        self._receiver_index = {r.name: i for i, r in enumerate(receivers)}
        allowed = torch.zeros(len(senders), len(receivers), dtype=torch.bool)
        for r, rec in enumerate(receivers):
            allowed[: self.n_upstream(rec), r] = True
        self.allowed: Bool[torch.Tensor, "sender receiver"] = allowed
        """Which sender can reach which receiver."""

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> Graph:
        """The graph of a model with this configuration (causal, pre-norm or parallel residual)."""
        if cfg.residual not in ("pre_norm", "parallel"):
            raise CircuitError(
                f"circuit discovery needs a pre-norm or parallel-residual causal LM; {cfg.family!r} is {cfg.residual}"
            )
        if not cfg.causal:
            raise CircuitError(f"circuit discovery needs a causal LM; {cfg.family!r} is an encoder")
        return cls(cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, parallel=cfg.residual == "parallel")

    # ------------------------------------------------------------------ sizes and lookups
    @property
    def n_senders(self) -> int:
        return len(self.senders)

    @property
    def n_receivers(self) -> int:
        return len(self.receivers)

    @property
    def n_edges(self) -> int:
        """Number of sender -> receiver edges."""
        return int(self.allowed.sum())

    def n_upstream(self, receiver: Receiver) -> int:
        """How many senders (a prefix of :attr:`senders`) this receiver reads."""
        if receiver.kind == "logits":
            return self.n_senders
        start = 1 + receiver.layer * (self.n_heads + 1)  # input + all earlier layers
        if receiver.kind == "mlp" and not self.parallel:
            return start + self.n_heads
        return start

    def layer_receivers(self, layer: int) -> slice:
        """Receivers of block ``layer``: q inputs, k inputs, v inputs, MLP input."""
        start = self.receiver_start[layer]
        return slice(start, start + self.n_heads + 2 * self.n_kv_heads + 1)

    def sender(self, name: str) -> int:
        try:
            return self._sender_index[name]
        except KeyError:
            raise CircuitError(f"no sender named {name!r}; senders are 'input', 'a<L>.h<H>', 'm<L>'") from None

    def receiver(self, name: str) -> int:
        try:
            return self._receiver_index[name]
        except KeyError:
            raise CircuitError(
                f"no receiver named {name!r}; receivers are 'a<L>.h<H><q|k|v>', 'm<L>', 'logits'"
                + (
                    " (k and v inputs belong to key/value heads: 'a<L>.kv<G><k>')"
                    if self.n_kv_heads != self.n_heads
                    else ""
                )
            ) from None

    def edge_name(self, sender: int, receiver: int) -> str:
        return f"{self.senders[sender].name}->{self.receivers[receiver].name}"

    def edge(self, name: str) -> tuple[int, int]:
        """``"a0.h1->a1.h2<k>"`` to (sender index, receiver index)."""
        if "->" not in name:
            raise CircuitError(f"an edge is written 'sender->receiver', got {name!r}")
        s, r = name.split("->", 1)
        u, v = self.sender(s.strip()), self.receiver(r.strip())
        if not self.allowed[u, v]:
            raise CircuitError(f"{s} cannot reach {r}: the sender is not upstream of the receiver")
        return u, v

    def shape_dict(self) -> dict[str, int | bool]:
        """The sizes that fix the graph (``n_layers``, ``n_heads``, ``n_kv_heads``, ``parallel``), by name."""
        return {name: getattr(self, name) for name in ("n_layers", "n_heads", "n_kv_heads", "parallel")}

    def __repr__(self) -> str:
        return (
            f"Graph({self.n_layers} layers, {self.n_heads} heads, {self.n_kv_heads} kv heads: "
            f"{self.n_senders} senders, {self.n_receivers} receivers, {self.n_edges} edges)"
        )
