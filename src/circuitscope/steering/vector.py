"""A steering vector: a direction at one hook, how it is applied, and where it came from."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import torch
from jaxtyping import Float

from circuitscope.errors import CircuitscopeError, ShapeError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["Mode", "SteeringVector", "SteeringVectorMismatchError", "model_fingerprint"]

Mode = Literal["add", "project"]


class SteeringVectorMismatchError(CircuitscopeError, ValueError):
    """A steering vector used with a model, hook or width it was not made for."""


def model_fingerprint(model: HookedModel) -> str:
    """Family, sizes and a hash of a sample of the embedding matrix: the same for the same weights."""
    c = model.cfg
    w = model.W_E.detach()
    step = max(1, w.shape[0] // 64)
    sample = w[::step][:64].float().cpu().contiguous()
    digest = hashlib.sha256(sample.numpy().tobytes()).hexdigest()[:16]
    return f"{c.family}-{c.n_layers}L-{c.d_model}d-{c.d_vocab}v-{digest}"


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
    method: str = "manual"
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
        if self.mode not in ("add", "project"):
            raise ValueError(f"mode must be 'add' or 'project', got {self.mode!r}")
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
