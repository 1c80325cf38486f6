"""Causal tracing over a fact set, split across the ranks of a ``torchrun`` launch.

:func:`trace_facts` traces each fact's prompt (its subject corrupted, its object's first token the
target) with :func:`~circuitscope.analysis.tracing.causal_trace`. Under ``torchrun`` the facts are
dealt to the ranks in contiguous blocks (:func:`~circuitscope.engine.distributed.shard`), after the
ranks are shown to agree on the arguments, and every rank gets every rank's traces in fact order
(:func:`~circuitscope.engine.distributed.all_gather`): each fact is traced by the same computation
as in one process, so the result is the one-process result. One process needs nothing of this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch
from jaxtyping import Float

from circuitscope.analysis.tracing import TraceKind, causal_trace
from circuitscope.analysis.tracing_results import TraceOptions, TraceResult, config_of
from circuitscope.core.fingerprint import model_fingerprint
from circuitscope.core.hooked_model import HookedModel
from circuitscope.engine.distributed import all_gather, argument_digest, check_same_arguments, current_world, shard
from circuitscope.errors import ShapeError

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11

__all__ = ["FactLike", "FactTraceResult", "trace_facts"]


class FactLike(Protocol):
    """What a fact needs for tracing (``circuitscope.tasks.Fact`` has it)."""

    @property
    def subject(self) -> str: ...
    @property
    def prompt(self) -> str: ...
    @property
    def object(self) -> str: ...


@dataclass(frozen=True, kw_only=True)
class FactTraceResult:
    """One causal trace per fact, in the order of the facts given."""

    kind: str
    """``"resid"``, ``"mlp"`` or ``"attn"``."""
    window: int
    """Layers restored together (1 for ``"resid"``)."""
    traces: list[TraceResult] = field(default_factory=list)
    """Each fact's trace (``[layer, pos]``; the prompts differ in length)."""

    @property
    def subject_last_effect(self) -> Float[torch.Tensor, "fact layer"]:
        """Each fact's indirect effect at its subject's last token, by layer (ROME's strongest site)."""
        return torch.stack([t.indirect_effect[:, t.baseline.subject_range[1] - 1] for t in self.traces])

    @property
    def last_effect(self) -> Float[torch.Tensor, "fact layer"]:
        """Each fact's indirect effect at its prompt's last token, by layer."""
        return torch.stack([t.indirect_effect[:, -1] for t in self.traces])

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "window": self.window,
            "subject_last_effect": self.subject_last_effect.mean(0).tolist(),
            "last_effect": self.last_effect.mean(0).tolist(),
            "traces": [t.to_dict() for t in self.traces],
        }


def trace_facts(
    model: HookedModel,
    facts: Sequence[FactLike],
    *,
    kind: TraceKind = "resid",
    window: int = 10,
    **options: Unpack[TraceOptions],
) -> FactTraceResult:
    """:func:`~circuitscope.analysis.tracing.causal_trace` of every fact, the target its object's first token.

    ``kind``, ``window`` and ``options`` (:class:`~circuitscope.analysis.tracing_results.TraceOptions`: the
    corruption, samples, seed, batch size, progress) as in ``causal_trace``. Under ``torchrun`` each rank
    traces its block of the facts and every rank returns the whole result.
    """
    if not facts:
        raise ShapeError("no facts to trace: give at least one (tasks.load_facts() has the shipped set)")
    world = current_world()
    cfg, _ = config_of(options)  # checked before any work, the same on every rank
    texts = (text for f in facts for text in (f.subject, f.prompt, f.object))
    arguments = {"model": model_fingerprint(model), "facts": argument_digest(*texts), "kind": kind, "window": window}
    check_same_arguments({**arguments, **asdict(cfg)}, world)
    mine = [
        causal_trace(
            model,
            facts[i].prompt,
            facts[i].subject,
            kind=kind,
            window=window,
            target=model.tok.encode(facts[i].object, prepend_bos=False)[0],
            **options,
        )
        for i in shard(len(facts), world)
    ]
    traces = [t for part in all_gather(mine, world) for t in part]
    return FactTraceResult(kind=kind, window=1 if kind == "resid" else window, traces=traces)
