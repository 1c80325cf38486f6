"""A steering vector: a direction at one hook, how it is applied, and where it came from.

:class:`SteeringVector` is an :class:`~circuitscope.interventions.Intervention`: ``with model.apply(v):``,
``model(tokens, interventions=[v])`` and ``model.generate(prompt, interventions=[v])`` steer with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, get_args

import torch
from jaxtyping import Float

from circuitscope.core.fingerprint import model_fingerprint
from circuitscope.core.hook_points import HookFn
from circuitscope.errors import CircuitscopeError, ShapeError
from circuitscope.interventions import PositionCounter

if TYPE_CHECKING:
    from circuitscope.core.hook_points import HookPoint
    from circuitscope.core.hooked_model import HookedModel

__all__ = [
    "Mode",
    "SteeringVector",
    "SteeringVectorMismatchError",
    "VectorMethod",
    "apply_steering",
    "steering_hook",
]

Mode = Literal["add", "project"]
"""How a vector is applied: added, or its direction projected out."""
VectorMethod = Literal["actadd", "caa", "pca", "probe", "function_vector", "manual"]
"""How a vector was built (``manual``: given by hand)."""


class SteeringVectorMismatchError(CircuitscopeError, ValueError):
    """A steering vector used with a model, hook or width it was not made for."""


@dataclass(frozen=True)
class SteeringVector:
    """A direction at ``hook`` and how to apply it.

    ``mode="add"``: ``x + coefficient * vector`` at every steered position.
    ``mode="project"``: ``x - coefficient * (x · v̂) v̂`` — coefficient 1 removes the component
    along the direction, 0 changes nothing, 2 reflects it.
    Steered positions are ``start_pos`` up to ``end_pos`` (exclusive; None = no end): 0/None steers every
    position, 1/None all but BOS, 1/2 only the first token after BOS (ActAdd's front injection).
    """

    vector: Float[torch.Tensor, " d"]
    """The direction (unnormalised: its length is the size of one unit of coefficient)."""
    hook: str
    """The hook it is applied at, e.g. ``blocks.6.hook_resid_pre``."""
    coefficient: float = 1.0
    """Multiplier (add) or share of the component removed (project)."""
    mode: Mode = "add"
    """``add`` or ``project``."""
    start_pos: int = 0
    """First steered position (absolute, BOS included)."""
    end_pos: int | None = None
    """One past the last steered position (None: every later position, generated ones too). ActAdd steers
    only the front positions (``start_pos=1, end_pos=2`` for a one-token prompt pair)."""
    method: VectorMethod = "manual"
    """How it was built: ``actadd``, ``caa``, ``pca``, ``probe``, ``function_vector``, ``manual``."""
    model: str = ""
    """:func:`model_fingerprint` of the model it was built on ('' = unchecked)."""
    details: dict[str, Any] = field(default_factory=dict)
    """JSON-able provenance: prompts, pairs, position, explained variance, probe accuracy, ..."""

    def __post_init__(self) -> None:
        if not isinstance(self.vector, torch.Tensor) or self.vector.ndim != 1:
            shape = tuple(self.vector.shape) if isinstance(self.vector, torch.Tensor) else type(self.vector).__name__
            raise ShapeError(f"a steering vector is one direction [d], got {shape}")
        if not torch.isfinite(self.vector).all():
            raise ValueError("the steering vector has NaN or infinite entries")
        if self.mode not in get_args(Mode):
            raise ValueError(f"mode must be 'add' or 'project', got {self.mode!r}")
        if self.method not in get_args(VectorMethod):
            raise ValueError(f"method must be one of {', '.join(get_args(VectorMethod))}, got {self.method!r}")
        if self.mode == "project" and float(self.vector.norm()) == 0.0:
            raise ValueError("cannot project out a zero vector")
        if self.start_pos < 0:
            raise ValueError(f"start_pos must be >= 0 (an absolute position), got {self.start_pos}")
        if self.end_pos is not None and self.end_pos <= self.start_pos:
            raise ValueError(f"end_pos ({self.end_pos}) must be greater than start_pos ({self.start_pos})")

    @property
    def d(self) -> int:
        return int(self.vector.shape[0])

    @property
    def unit(self) -> Float[torch.Tensor, " d"]:
        return self.vector / self.vector.norm().clamp_min(1e-12)

    def with_(self, **changes: Any) -> SteeringVector:
        """A copy with some fields changed (``v.with_(coefficient=4, start_pos=1)``)."""
        return replace(self, **changes)

    def check(self, model: HookedModel) -> None:
        """Raise :class:`SteeringVectorMismatchError` unless this vector fits ``model``."""
        if self.hook not in model.hook_names:
            raise SteeringVectorMismatchError(
                f"the vector is for hook {self.hook!r}, which this model does not have; "
                f"rebuild it at one of model.hook_names (e.g. 'blocks.0.hook_resid_pre')"
            )
        if self.model:
            mine = model_fingerprint(model)
            if mine != self.model:
                raise SteeringVectorMismatchError(
                    f"the vector was built on model {self.model}, not this one ({mine}); "
                    "steering vectors do not transfer between models: rebuild it on this model"
                )
        residual = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out")
        if self.hook.endswith(residual) and self.d != model.cfg.d_model:
            raise SteeringVectorMismatchError(
                f"the vector has dimension {self.d} but {self.hook} has d_model {model.cfg.d_model}"
            )

    def hooks(self, model: HookedModel) -> list[tuple[str, HookFn]]:
        """The one forward hook that applies this vector (fresh, with its own position count)."""
        return [(self.hook, steering_hook(self))]


def apply_steering(x: torch.Tensor, vector: SteeringVector, offset: int = 0) -> torch.Tensor:
    """``x`` [batch, pos, ..., d] steered at absolute positions in [start_pos, end_pos) (``x[:, 0]`` is ``offset``)."""
    if x.shape[-1] != vector.d:
        raise ShapeError(
            f"steering vector of dimension {vector.d} cannot be applied at {vector.hook}, "
            f"whose activation has shape {tuple(x.shape)} (last axis {x.shape[-1]})"
        )
    first = max(vector.start_pos - offset, 0)
    last = x.shape[1] if vector.end_pos is None else min(max(vector.end_pos - offset, 0), x.shape[1])
    if first >= last or vector.coefficient == 0.0:
        return x
    v = vector.vector.to(device=x.device, dtype=x.dtype)
    out = x.clone()
    part = out[:, first:last]
    if vector.mode == "add":
        part.add_(vector.coefficient * v)
    else:
        u = v / v.norm().clamp_min(1e-12)
        part.sub_(vector.coefficient * (part @ u)[..., None] * u)
    return out


def steering_hook(vector: SteeringVector) -> HookFn:
    """A fresh hook function applying ``vector``; absolute positions hold across cached generation steps."""
    positions = PositionCounter()

    def steer(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        return apply_steering(x, vector, positions.offset(x))

    steer.__qualname__ = f"steer[{vector.method}:{vector.mode}:{vector.coefficient:g}@{vector.hook}]"
    return steer
