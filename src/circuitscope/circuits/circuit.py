"""A circuit as a value: the edges kept, their scores, and what they were found on; saved as JSON.

File format (``format: "circuitscope.circuit"``, ``version: 2``), one JSON object:

``format``, ``version``   this format and its version (a reader refuses a newer version)
``model``                 ``name``, the graph's shape: ``n_layers``, ``n_heads``, ``n_kv_heads``, ``parallel``,
                          and ``fingerprint`` (:func:`~circuitscope.core.fingerprint.model_fingerprint`: family,
                          layers, d_model, vocabulary and a hash of the embedding, as steering vectors
                          record it; '' when the circuit was built without a model). A circuit only
                          applies to that model: loading it for another is refused.
``task``                  ``name``, ``n_prompts``, ``metric`` of the task it was found on
``method``                ``eap``, ``eap-ig``, ``acdc`` or ``manual``; ``steps``; ``ablation``
``nodes``                 the nodes the kept edges touch (``input``, ``a3.h1``, ``m3``, ``logits``; k/v inputs
                          of key/value heads as ``a3.kv0``)
``edges``                 kept edges, strongest first: ``{"sender", "receiver", "score"}``
``scores``                every edge of the graph as ``[sender, receiver, score]`` (null if not scored)
``info``                  free-form numbers (timings, metric values)

Names are those of :mod:`circuitscope.circuits.graph`. Version 1 files (no fingerprint) still load;
checked against a model, only its layers and heads can be compared, with an :class:`UnfingerprintedCircuitWarning`.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Bool, Float

from circuitscope.circuits.graph import CircuitError, Graph
from circuitscope.core.files import atomic_write_text
from circuitscope.core.fingerprint import model_fingerprint

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel
    from circuitscope.tasks.task import Task

__all__ = ["FORMAT", "VERSION", "Circuit", "UnfingerprintedCircuitWarning"]

FORMAT = "circuitscope.circuit"
VERSION = 2


class UnfingerprintedCircuitWarning(UserWarning):
    """A circuit file without a model fingerprint (older circuitscope): only layers and heads were checked."""


@dataclass(frozen=True)
class Circuit:
    """Selected edges of a model's graph, with scores and provenance."""

    graph: Graph
    """The model's graph."""
    edges: Bool[torch.Tensor, "sender receiver"]
    """Kept edges."""
    scores: Float[torch.Tensor, "sender receiver"]
    """Score of every edge (NaN where there is no edge or none was computed)."""
    model_name: str
    """Name the model was loaded by."""
    task: dict[str, Any] = field(default_factory=dict)
    """``name``, ``n_prompts``, ``metric`` of the task."""
    method: str = "manual"
    """How the edges were chosen: ``eap``, ``eap-ig``, ``acdc`` or ``manual``."""
    ablation: str = "corrupted"
    """What an ablated sender outputs when the circuit is run."""
    steps: int = 1
    """EAP-IG steps (1 for EAP)."""
    info: dict[str, Any] = field(default_factory=dict)
    """Free-form numbers (timings, metric values, faithfulness)."""
    fingerprint: str = ""
    """:func:`~circuitscope.core.fingerprint.model_fingerprint` of the model it was found on ('' = unknown)."""

    def __post_init__(self) -> None:
        shape = (self.graph.n_senders, self.graph.n_receivers)
        if tuple(self.edges.shape) != shape or tuple(self.scores.shape) != shape:
            raise CircuitError(f"edges and scores must be [sender, receiver] = {shape}")
        if bool((self.edges & ~self.graph.allowed).any()):
            raise CircuitError(
                "the circuit keeps an edge the graph does not have (a sender downstream of its receiver)"
            )

    @classmethod
    def found(
        cls,
        model: HookedModel,
        task: Task,
        edges: Bool[torch.Tensor, "sender receiver"],
        scores: Float[torch.Tensor, "sender receiver"],
        *,
        graph: Graph,
        model_name: str,
        method: str,
        ablation: str,
        steps: int = 1,
        info: dict[str, Any] | None = None,
        metric: str | None = None,
    ) -> Circuit:
        """A circuit found on ``model`` for ``task``, with the provenance every discovery records: the task's name,
        prompt count and metric (``metric`` when the search used another than the task's own) and the model's
        fingerprint."""
        about = {"name": task.name, "n_prompts": len(task), "metric": metric or task.metric}
        fingerprint = model_fingerprint(model)
        return cls(graph, edges, scores, model_name, about, method, ablation, steps, info or {}, fingerprint)

    # ------------------------------------------------------------------ views
    @property
    def n_edges(self) -> int:
        return int(self.edges.sum())

    @property
    def nodes(self) -> list[str]:
        """Nodes touched by a kept edge, in graph order."""
        used_s = self.edges.any(1)
        used_r = self.edges.any(0)
        names = [s.name for s, k in zip(self.graph.senders, used_s.tolist(), strict=True) if k]
        for rec, k in zip(self.graph.receivers, used_r.tolist(), strict=True):
            if k and rec.node not in names:
                names.append(rec.node)
        return names

    def edge_list(self) -> list[tuple[str, str, float]]:
        """Kept edges as (sender, receiver, score), strongest ``|score|`` first."""
        out = []
        for u, r in self.edges.nonzero().tolist():
            s = float(self.scores[u, r])
            out.append((self.graph.senders[u].name, self.graph.receivers[r].name, s))
        return sorted(out, key=lambda e: -abs(e[2]) if not math.isnan(e[2]) else 0.0)

    def with_edges(self, edges: Bool[torch.Tensor, "sender receiver"], **info: Any) -> Circuit:
        """The same scores with another edge set."""
        return Circuit(
            self.graph, edges.clone(), self.scores, self.model_name, self.task, self.method, self.ablation, self.steps,
            {**self.info, **info}, self.fingerprint,
        )  # fmt: skip

    def check_model(self, model: Any) -> None:
        """Raise if ``model`` (a HookedModel) is not the model this circuit was found on.

        With a recorded fingerprint the model must have the same one; without (files of format
        version 1), only the graph's shape (layers, heads, key/value heads, residual) is compared.
        """
        cfg = model.cfg
        mine = self.graph.shape_dict()
        theirs = {"n_layers": cfg.n_layers, "n_heads": cfg.n_heads, "n_kv_heads": cfg.n_kv_heads,
                  "parallel": cfg.residual == "parallel"}  # fmt: skip
        if self.fingerprint and (given := model_fingerprint(model)) != self.fingerprint:
            raise CircuitError(
                f"this circuit is for {self.model_name!r} ({self.fingerprint}, {mine['n_heads']} heads); the model "
                f"given is {given} ({theirs['n_heads']} heads). A circuit only applies to the model it was found on: "
                "load that model, or discover the circuit again on this one"
            )
        if mine != theirs:
            raise CircuitError(
                f"this circuit is for {self.model_name!r} ({mine}); the model given has {theirs}. "
                "Load the model the circuit was found on"
            )

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if math.isnan(x) else x

        every = [
            [self.graph.senders[u].name, self.graph.receivers[r].name, num(float(self.scores[u, r]))]
            for u, r in self.graph.allowed.nonzero().tolist()
        ]
        return {
            "format": FORMAT,
            "version": VERSION,
            "model": {"name": self.model_name, **self.graph.shape_dict(), "fingerprint": self.fingerprint},
            "task": self.task,
            "method": self.method,
            "steps": self.steps,
            "ablation": self.ablation,
            "n_edges": self.n_edges,
            "nodes": self.nodes,
            "edges": [{"sender": s, "receiver": r, "score": num(v)} for s, r, v in self.edge_list()],
            "scores": every,
            "info": self.info,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the circuit as JSON (to a temporary name, then renamed)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False)
        atomic_write_text(path, text)
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "circuit") -> Circuit:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CircuitError(f"{source} is not a circuitscope circuit file (no format {FORMAT!r})")
        version = data.get("version")
        if not isinstance(version, int) or version < 1:
            raise CircuitError(f"{source}: bad format version {version!r}")
        if version > VERSION:
            raise CircuitError(
                f"{source} has circuit format version {version}, newer than this circuitscope reads ({VERSION}); "
                "upgrade circuitscope"
            )
        try:
            m = data["model"]
            fingerprint = m.get("fingerprint", "")
            if not isinstance(fingerprint, str):
                raise TypeError(f"model.fingerprint must be a string, got {fingerprint!r}")
            graph = Graph(int(m["n_layers"]), int(m["n_heads"]), int(m["n_kv_heads"]), bool(m["parallel"]))
            edges = torch.zeros(graph.n_senders, graph.n_receivers, dtype=torch.bool)
            scores = torch.full((graph.n_senders, graph.n_receivers), math.nan)
            for s, r, v in data["scores"]:
                u, w = graph.sender(s), graph.receiver(r)
                scores[u, w] = math.nan if v is None else float(v)
            for e in data["edges"]:
                edges[graph.sender(e["sender"]), graph.receiver(e["receiver"])] = True
            return cls(
                graph, edges, scores, str(m["name"]), dict(data.get("task", {})), str(data.get("method", "manual")),
                str(data.get("ablation", "corrupted")), int(data.get("steps", 1)), dict(data.get("info", {})),
                fingerprint,
            )  # fmt: skip
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            if isinstance(err, CircuitError):
                raise CircuitError(f"{source}: {err}") from None
            raise CircuitError(f"{source} is malformed: {type(err).__name__}: {err}") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str], model: Any = None) -> Circuit:
        """Read a circuit file; with ``model``, also check that it is the circuit's model."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise CircuitError(f"no circuit file at {path}") from None
        except json.JSONDecodeError as err:
            raise CircuitError(f"{path} is not JSON: {err}") from None
        circuit = cls.from_dict(data, source=str(path))
        if model is not None:
            circuit.check_model(model)
            if not circuit.fingerprint:
                warnings.warn(
                    UnfingerprintedCircuitWarning(
                        f"{path} records no model fingerprint (written by an older circuitscope, or built without a "
                        "model), so only its layers and heads were checked against this model; save it again from "
                        "a discovery on this model to record one"
                    ),
                    stacklevel=2,
                )
        return circuit

    def __repr__(self) -> str:
        return f"Circuit({self.model_name!r}, {self.method}, {self.n_edges} of {self.graph.n_edges} edges)"
