"""Build steering vectors: ActAdd from a prompt pair, CAA mean difference, first principal component, probe weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from circuitscope.core.fingerprint import model_fingerprint
from circuitscope.probes.activations import Position, activations_at_position
from circuitscope.probes.logistic import LinearProbe
from circuitscope.progress import SILENT
from circuitscope.steering.vector import Mode, SteeringVector, VectorMethod

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["actadd_vector", "caa_vector", "pca_vector", "probe_vector"]


def _check_pairs(pairs: Sequence[tuple[str, str]]) -> None:
    if not pairs:
        raise ValueError("no contrast pairs given: pass [(positive_text, negative_text), ...]")
    for p in pairs:
        if not (isinstance(p, tuple | list) and len(p) == 2 and all(isinstance(t, str) for t in p)):
            raise TypeError(f"a contrast pair is (positive_text, negative_text), got {p!r}")


def _differences(model: HookedModel, pairs: Sequence[tuple[str, str]], hook: str, position: Position) -> torch.Tensor:
    _check_pairs(pairs)
    pos = activations_at_position(model, [p for p, _ in pairs], hook, position, on_progress=SILENT)[hook]
    neg = activations_at_position(model, [n for _, n in pairs], hook, position, on_progress=SILENT)[hook]
    return pos - neg


def _built(
    model: HookedModel,
    direction: torch.Tensor,
    hook: str,
    method: VectorMethod,
    details: dict[str, Any],
    *,
    coefficient: float,
    mode: Mode,
    start_pos: int,
    end_pos: int | None = None,
) -> SteeringVector:
    """The vector a recipe built on ``model``: its fingerprint and the recipe's provenance attached."""
    # A keyword pass-through, like every dataclass built from its fields (the one place the recipes do it).
    return SteeringVector(
        direction,
        hook,
        coefficient=coefficient,
        mode=mode,
        start_pos=start_pos,
        end_pos=end_pos,
        method=method,
        model=model_fingerprint(model),
        details=details,
    )


def actadd_vector(
    model: HookedModel,
    positive: str,
    negative: str,
    hook: str,
    *,
    position: Position = -1,
    coefficient: float = 1.0,
    mode: Mode = "add",
    start_pos: int = 1,
    end_pos: int | None = 2,
) -> SteeringVector:
    """ActAdd (Turner et al. 2023): activation of ``positive`` minus ``negative`` at ``hook`` and ``position``.

    With single-token prompts such as "Love" / "Hate" the last position is the word itself
    (BOS is shared and cancels), which is the paper's vector; ``position="mean"`` averages
    longer prompts. As in the paper it is injected at the front of the prompt only (position 1,
    right after BOS: ``start_pos=1, end_pos=2``); pass ``end_pos=None`` to add it at every later position.
    """
    diff = _differences(model, [(positive, negative)], hook, position)[0]
    details = {"positive": positive, "negative": negative, "position": position}
    return _built(
        model, diff, hook, "actadd", details, coefficient=coefficient, mode=mode, start_pos=start_pos, end_pos=end_pos
    )


def caa_vector(
    model: HookedModel,
    pairs: Sequence[tuple[str, str]],
    hook: str,
    *,
    position: Position = -1,
    coefficient: float = 1.0,
    mode: Mode = "add",
    start_pos: int = 1,
) -> SteeringVector:
    """Contrastive Activation Addition (Rimsky et al. 2023): mean over pairs of positive minus negative activation."""
    diffs = _differences(model, pairs, hook, position)
    details = {"n_pairs": len(pairs), "position": position, "pairs": [list(p) for p in pairs[:50]]}
    return _built(model, diffs.mean(0), hook, "caa", details, coefficient=coefficient, mode=mode, start_pos=start_pos)


# Same shape as src/circuitscope/steering/build.py:caa_vector on purpose: both recipes read the same contrast pairs
# and take the same placement options; only the reduction of the differences (mean, first component) differs.
def pca_vector(
    model: HookedModel,
    pairs: Sequence[tuple[str, str]],
    hook: str,
    *,
    position: Position = -1,
    coefficient: float = 1.0,
    mode: Mode = "add",
    start_pos: int = 1,
) -> SteeringVector:
    """First principal component of the pair differences (representation engineering, Zou et al. 2023).

    The differences are taken about zero, as RepE's random sign flips of the pairs make them
    (so the axis along which positive and negative differ dominates); the component is
    oriented so positive examples score higher, and scaled to the mean projection of the
    differences on it, so coefficient 1 is comparable with CAA.
    """
    diffs = _differences(model, pairs, hook, position).double()
    _, s, vh = torch.linalg.svd(diffs, full_matrices=False)
    axis = vh[0]
    proj = diffs @ axis
    if float(proj.mean()) < 0:
        axis, proj = -axis, -proj
    details = {"n_pairs": len(pairs), "position": position, "explained_variance": float(s[0] ** 2 / (s**2).sum())}
    vector = (axis * proj.mean()).float()
    return _built(model, vector, hook, "pca", details, coefficient=coefficient, mode=mode, start_pos=start_pos)


def probe_vector(
    model: HookedModel,
    probe: LinearProbe,
    hook: str,
    *,
    coefficient: float = 1.0,
    mode: Mode = "add",
    start_pos: int = 1,
) -> SteeringVector:
    """A linear probe's direction (raw activation space), scaled to the distance between its class means along it."""
    direction = probe.direction
    gap = float((probe.class_means[1] - probe.class_means[0]) @ direction)
    details = {"probe_test_accuracy": probe.test_accuracy, "class_gap": gap}
    return _built(
        model, direction * gap, hook, "probe", details, coefficient=coefficient, mode=mode, start_pos=start_pos
    )
