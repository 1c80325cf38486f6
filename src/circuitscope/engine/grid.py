"""Scores over named axes: the result type of every analysis that gives one number per component.

Activation, attribution and path patching, head ablation and edge attribution all return a
tensor of scores whose axes are model components (layer, head, position, neuron, edge end, ...),
with tick labels per axis, the metric they measure, and the metric's value on the clean and
corrupted runs. :class:`ScoreGrid` holds exactly that; the analyses' result classes derive from it
and add what is their own. :class:`MetricGrid` is the grid whose scores are derived from a raw
metric (normalised between the two runs, or its change from the clean run).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import torch
from jaxtyping import Float, Int

from circuitscope.errors import ShapeError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["AXIS_NAMES", "AxisName", "MetricGrid", "ScoreGrid", "component_labels"]

AxisName = Literal["layer", "head", "kv_head", "pos", "neuron", "sender", "receiver", "prompt", "coefficient", "expert"]
"""What an axis of a score grid indexes: layers, attention heads, key/value heads (grouped-query
attention), token positions, MLP neurons, the senders and receivers of a circuit graph's edges, prompts,
the coefficients of a steering sweep, the experts of a mixture-of-experts layer."""
AXIS_NAMES: tuple[str, ...] = get_args(AxisName)


def _plain(value: Any) -> Any:
    """``value`` as JSON-ready Python values: tensors as nested lists, non-finite floats as None."""
    if isinstance(value, torch.Tensor):
        return _plain(value.detach().cpu().tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, bool)):
        return value
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")


@dataclass(frozen=True, kw_only=True)
class ScoreGrid:
    """A score for every component, on axes named by ``axes``."""

    scores: Float[torch.Tensor, "..."]
    """One score per component; axis ``i`` indexes ``axes[i]``."""
    axes: tuple[AxisName, ...]
    """Axis names of ``scores``."""
    labels: dict[str, list[str]]
    """Tick labels per axis name (e.g. the tokens of the first clean prompt for ``pos``)."""
    metric: str
    """What the scores measure (a task metric name, or ``loss`` for the next-token loss)."""
    clean_value: float | None
    """Mean metric of the clean run (None where the analysis has no clean run)."""
    corrupted_value: float | None
    """Mean metric of the corrupted run (None where the analysis has no corrupted run)."""

    def __post_init__(self) -> None:
        unknown = [a for a in self.axes if a not in AXIS_NAMES]
        if unknown:
            raise ShapeError(f"unknown axis names {unknown}; choose from {AXIS_NAMES}")
        if len(self.axes) != self.scores.ndim:
            raise ShapeError(f"{len(self.axes)} axis names {self.axes} for scores of shape {tuple(self.scores.shape)}")

    def axis(self, name: AxisName) -> int:
        """The position of axis ``name`` in ``scores`` (e.g. ``grid.scores.sum(grid.axis("pos"))``)."""
        if name not in self.axes:
            raise ShapeError(f"these scores have no {name!r} axis; their axes are {self.axes}")
        return self.axes.index(name)

    def to_json(self) -> dict[str, Any]:
        """Every field as JSON-ready values (tensors as nested lists, NaN as None)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.metadata.get("json", True)}


@dataclass(frozen=True, kw_only=True)
class MetricGrid(ScoreGrid):
    """A score grid derived from the metric measured once per component, between a clean and a corrupted run."""

    raw: Float[torch.Tensor, "..."]
    """The metric itself (mean over prompts) for each component, same shape as ``scores``."""
    clean_value: float
    """Mean metric of the clean run."""
    corrupted_value: float
    """Mean metric of the corrupted run."""

    @property
    def change(self) -> Float[torch.Tensor, "..."]:
        """Metric change from the clean run (negative = a drop, for metrics where higher is better)."""
        return self.raw - self.clean_value


def component_labels(
    model: HookedModel,
    axes: Sequence[AxisName],
    *,
    prompt: Int[torch.Tensor, " pos"] | None = None,
    d_mlp: int | None = None,
) -> dict[str, list[str]]:
    """Tick labels of model-component axes: indices for layers, heads, key/value heads and neurons
    (``d_mlp`` of them, default the model's), ``'token'·i`` of ``prompt``'s tokens for ``pos``."""
    cfg = model.cfg
    sizes = {"layer": cfg.n_layers, "head": cfg.n_heads, "kv_head": cfg.n_kv_heads, "neuron": d_mlp or cfg.d_mlp}
    out: dict[str, list[str]] = {}
    for axis in axes:
        if axis == "pos":
            if prompt is None:
                raise ShapeError("labels of a pos axis need the prompt's tokens")
            seq = prompt.shape[-1]
            tokens = model.to_str_tokens(prompt) if model.tokenizer is not None else [str(i) for i in range(seq)]
            out[axis] = [f"{t!r}·{i}" for i, t in enumerate(tokens[:seq])]
        elif axis in sizes:
            out[axis] = [str(i) for i in range(sizes[axis])]
        else:
            raise ShapeError(f"the {axis!r} axis is not a model component; give its labels yourself")
    return out
