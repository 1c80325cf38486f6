"""The IOI circuit's result types: head classes, the threshold rule, the circuit's evaluation.

These dataclasses hold everything :func:`~circuitscope.circuits.ioi.ioi_circuit` finds, so the
report and ``--json`` show all of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import torch
from jaxtyping import Float

from circuitscope.circuits.circuit import Circuit
from circuitscope.engine.grid import ScoreGrid, _plain

__all__ = [
    "HEAD_CLASSES",
    "ROLES",
    "CircuitEvaluation",
    "ClassFinding",
    "CompletenessPoint",
    "HeadClass",
    "HeadClasses",
    "HeadEvidence",
    "IOICircuitResult",
    "MinimalityPoint",
    "PublishedCircuit",
    "Role",
    "ThresholdRule",
]

HeadClass = Literal[
    "name_mover",
    "negative_name_mover",
    "s_inhibition",
    "induction",
    "duplicate_token",
    "previous_token",
    "backup_name_mover",
]
"""The paper's seven classes of heads, in the order the search finds them (top of the circuit first)."""
HEAD_CLASSES: tuple[HeadClass, ...] = get_args(HeadClass)

Role = Literal["IO", "S1", "S1+1", "S2", "END"]
"""Token roles in an IOI prompt: the indirect object, the subject's first and second mention,
the token after S1, and the last token (where the answer is predicted)."""
ROLES: tuple[Role, ...] = get_args(Role)

Direction = Literal["positive", "negative"]


@dataclass(frozen=True)
class ThresholdRule:
    """When a head joins a class: its score is more than ``k_std`` standard deviations of all
    heads' scores away from their mean, in the class's direction, and it is among the ``max_heads``
    strongest such heads."""

    k_std: float = 2.0
    """How many standard deviations (over all heads' scores of one step) a member must clear."""
    max_heads: int = 6
    """At most this many heads per class (the strongest first)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.k_std) and 0.0 < self.k_std <= 10.0):
            raise ValueError(f"k_std must be in (0, 10], got {self.k_std}; 2 is the default, larger keeps fewer heads")
        if not 1 <= self.max_heads <= 64:
            raise ValueError(f"max_heads must be between 1 and 64, got {self.max_heads}")

    def cut(self, scores: Float[torch.Tensor, "layer head"], direction: Direction) -> float:
        """The score a member must pass: mean + k·std (positive) or mean - k·std (negative)."""
        flat = scores.flatten().double()
        mean, std = float(flat.mean()), float(flat.std(unbiased=False))
        return mean + self.k_std * std if direction == "positive" else mean - self.k_std * std

    def select(
        self,
        scores: Float[torch.Tensor, "layer head"],
        direction: Direction,
        exclude: frozenset[tuple[int, int]] = frozenset(),
    ) -> list[tuple[int, int]]:
        """The heads past :meth:`cut`, strongest first, at most ``max_heads``, none of ``exclude``."""
        cut = self.cut(scores, direction)
        sign = 1.0 if direction == "positive" else -1.0
        order = torch.argsort(sign * scores.flatten(), descending=True).tolist()
        n_heads = scores.shape[1]
        out: list[tuple[int, int]] = []
        for i in order:
            layer, head = divmod(int(i), n_heads)
            value = float(scores[layer, head])
            if sign * (value - cut) <= 0:
                break
            if (layer, head) in exclude:
                continue
            out.append((layer, head))
            if len(out) == self.max_heads:
                break
        return out

    def to_json(self) -> dict[str, Any]:
        return {"k_std": self.k_std, "max_heads": self.max_heads}


@dataclass(frozen=True)
class HeadEvidence:
    """One member of a class and the evidence for its role."""

    layer: int
    head: int
    score: float
    """Its score in the step that selected it (path-patching score, or the growth of its direct effect)."""
    attention: dict[str, float] = field(default_factory=dict)
    """Mean attention from a query role to a key role over the clean prompts, keyed ``"END->IO"``,
    ``"END->S1"``, ``"END->S2"``, ``"S2->S1"``, ``"S2->S1+1"`` (the ones that matter for its class)."""
    copy_score: float | None = None
    """OV copying score on names (fraction of names whose own token is in the head's top-5 OV logits;
    negative heads: of the bottom-5), for the name-mover classes; None for others."""
    detectors: dict[str, float] = field(default_factory=dict)
    """The existing head detectors' scores (``previous_token``, ``duplicate_token``, ``induction``)."""

    @property
    def name(self) -> str:
        return f"L{self.layer}H{self.head}"

    def to_json(self) -> dict[str, Any]:
        return _plain(
            {
                "head": self.name,
                "layer": self.layer,
                "index": self.head,
                "score": self.score,
                "attention": self.attention,
                "copy_score": self.copy_score,
                "detectors": self.detectors,
            }
        )


@dataclass(frozen=True)
class ClassFinding:
    """One class: how it was searched for, every head's score in that step, the cut and the members."""

    name: HeadClass
    method: str
    """The step in words, e.g. ``path patching to the logits (ABC)`` or ``to the queries of L9H6, L9H9 at END``."""
    scores: ScoreGrid
    """Every head's score in this step, axes ``("layer", "head")``."""
    direction: Direction
    """Whether members have the largest (positive) or most negative scores."""
    cut: float
    """The value the threshold rule gave for this step."""
    members: list[HeadEvidence]
    """The heads that joined, strongest first (empty when none passed the cut)."""
    note: str = ""
    """Why a class is empty or was not searched (e.g. no receivers from the step before)."""

    @property
    def heads(self) -> list[tuple[int, int]]:
        return [(m.layer, m.head) for m in self.members]

    # A JSON view of this result's own fields: alike in shape to other results' views, on purpose.
    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            "direction": self.direction,
            "cut": _plain(self.cut),
            "members": [m.to_json() for m in self.members],
            "note": self.note,
            "scores": _plain(self.scores.scores),
            "metric": self.scores.metric,
        }


@dataclass(frozen=True)
class HeadClasses:
    """All seven classes, found under one threshold rule."""

    rule: ThresholdRule
    classes: dict[HeadClass, ClassFinding]
    """Every class of :data:`HEAD_CLASSES`, in that order."""

    def __post_init__(self) -> None:
        missing = [c for c in HEAD_CLASSES if c not in self.classes]
        if missing:
            raise ValueError(f"head classes missing: {missing}")

    def heads(self, name: HeadClass) -> list[tuple[int, int]]:
        return self.classes[name].heads

    @property
    def all_heads(self) -> list[tuple[int, int]]:
        """Every head in some class, each once, in layer order."""
        return sorted({h for c in self.classes.values() for h in c.heads})

    def class_of(self, layer: int, head: int) -> HeadClass | None:
        """The first class a head belongs to (a head found in two steps keeps the first)."""
        for name, finding in self.classes.items():
            if (layer, head) in finding.heads:
                return name
        return None

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule.to_json(), "classes": {k: v.to_json() for k, v in self.classes.items()}}


# Fields one per line, a docstring under each (the house style of results): alike in shape only, on purpose.
@dataclass(frozen=True)
class CompletenessPoint:
    """One removal set K: |F(C \\ K) - F(M \\ K)| (small = the circuit explains the model without K too)."""

    label: str
    """``class:name_mover`` for a class-removal set, ``random:3`` for the 4th random set, ``empty``."""
    removed: list[tuple[int, int]]
    f_circuit: float
    """F(C \\ K): mean logit difference of the circuit with K also mean-ablated."""
    f_model: float
    """F(M \\ K): mean logit difference of the whole model with K mean-ablated."""

    @property
    def gap(self) -> float:
        return abs(self.f_circuit - self.f_model)

    def to_json(self) -> dict[str, Any]:
        return _plain(
            {
                "label": self.label,
                "removed": [f"L{a}H{b}" for a, b in self.removed],
                "f_circuit": self.f_circuit,
                "f_model": self.f_model,
                "gap": self.gap,
            }
        )


# Same shape as src/circuitscope/circuits/ioi/result.py:CompletenessPoint on purpose: the two criteria of the
# paper, each a removal set, two F values and their gap under its own names (which the JSON keeps).
@dataclass(frozen=True)
class MinimalityPoint:
    """For one circuit head v, the set K that shows it matters: |F(C \\ (K ∪ {v})) - F(C \\ K)|."""

    head: tuple[int, int]
    head_class: HeadClass
    removed: list[tuple[int, int]]
    """K (without v)."""
    f_without_k: float
    """F(C \\ K)."""
    f_without_k_and_v: float
    """F(C \\ (K ∪ {v}))."""

    @property
    def change(self) -> float:
        return abs(self.f_without_k - self.f_without_k_and_v)

    def to_json(self) -> dict[str, Any]:
        return _plain(
            {
                "head": f"L{self.head[0]}H{self.head[1]}",
                "class": self.head_class,
                "removed": [f"L{a}H{b}" for a, b in self.removed],
                "f_without_k": self.f_without_k,
                "f_without_k_and_v": self.f_without_k_and_v,
                "change": self.change,
            }
        )


@dataclass(frozen=True)
class CircuitEvaluation:
    """Faithfulness, completeness and minimality of the circuit, everything outside it mean-ablated
    over the ABC distribution (per template and position)."""

    f_model: float
    """F(M): the model's mean logit difference on the clean prompts."""
    f_circuit: float
    """F(C): the same with every head outside the circuit mean-ablated."""
    completeness: list[CompletenessPoint]
    minimality: list[MinimalityPoint]
    n_reference: int
    """ABC prompts per template the means were taken over."""

    @property
    def faithfulness(self) -> float:
        """F(C) / F(M) (the paper: 87% on GPT-2 small); NaN when F(M) is 0."""
        return self.f_circuit / self.f_model if self.f_model != 0 else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {
            "f_model": _plain(self.f_model),
            "f_circuit": _plain(self.f_circuit),
            "faithfulness": _plain(self.faithfulness),
            "n_reference": self.n_reference,
            "completeness": [p.to_json() for p in self.completeness],
            "minimality": [p.to_json() for p in self.minimality],
        }


@dataclass(frozen=True)
class PublishedCircuit:
    """A circuit as a paper published it (shipped as data with its source)."""

    model: str
    n_layers: int
    source: str
    """Citation (authors, title, year, where in the paper)."""
    classes: dict[HeadClass, list[tuple[int, int]]]
    clean_logit_diff: float | None
    faithfulness: float | None
    """F(C)/F(M) as published (0.87 for GPT-2 small)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "n_layers": self.n_layers,
            "source": self.source,
            "classes": {k: [f"L{a}H{b}" for a, b in v] for k, v in self.classes.items()},
            "clean_logit_diff": self.clean_logit_diff,
            "faithfulness": self.faithfulness,
        }


@dataclass(frozen=True)
class IOICircuitResult:
    """The whole answer: the classes found, the circuit, its evaluation, and the published one beside it."""

    model_name: str
    fingerprint: str
    n_layers: int
    n_heads: int
    n_prompts: int
    clean_logit_diff: float
    """Mean logit difference IO - S on the clean prompts."""
    clean_accuracy: float
    """Fraction of clean prompts where IO's logit beats S's."""
    classes: HeadClasses
    evaluation: CircuitEvaluation | None
    """None when the circuit is empty (no class found a member) or the model cannot do the task."""
    circuit: Circuit | None
    """The circuit's edges as a circuit file (``circuit-eval`` reads it); None when empty."""
    reference: PublishedCircuit
    warnings: list[str] = field(default_factory=list)
    """Said at the top of the report (e.g. clean accuracy near chance)."""
    seconds: float = 0.0

    def relative_depth(self, layer: int) -> float:
        """``layer / n_layers``: where a head sits, comparable across models of different depth."""
        return layer / self.n_layers

    # A JSON view of this result's own fields: alike in shape to other results' views, on purpose.
    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "fingerprint": self.fingerprint,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "n_prompts": self.n_prompts,
            "clean_logit_diff": _plain(self.clean_logit_diff),
            "clean_accuracy": _plain(self.clean_accuracy),
            "classes": self.classes.to_json(),
            "evaluation": self.evaluation.to_json() if self.evaluation is not None else None,
            "circuit": self.circuit.to_dict() if self.circuit is not None else None,
            "reference": self.reference.to_json(),
            "warnings": list(self.warnings),
            "seconds": self.seconds,
        }
