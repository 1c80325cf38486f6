"""Steering-vector files: one safetensors file whose header metadata holds the JSON description, versioned."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from circuitscope.core.files import atomic_write
from circuitscope.errors import LoadError
from circuitscope.steering.vector import SteeringVector, SteeringVectorMismatchError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["FORMAT", "FORMAT_VERSION", "load_vector", "save_vector"]

FORMAT = "circuitscope.steering_vector"
FORMAT_VERSION = 1


_META_TYPES: dict[str, type | tuple[type, ...]] = {
    "hook": str,
    "d": int,
    "coefficient": (int, float),
    "mode": str,
    "start_pos": int,
    "end_pos": (int, type(None)),
    "method": str,
    "model": str,
    "details": dict,
}
"""The fields of a vector that the file's JSON metadata holds (in this order), with their JSON types."""


def save_vector(vector: SteeringVector, path: str | os.PathLike[str]) -> Path:
    """Write ``vector`` to ``path`` (``.safetensors``) atomically: a temporary file, then a rename."""
    from safetensors.torch import save_file

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    meta = {key: getattr(vector, key) for key in _META_TYPES}
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "metadata": json.dumps(meta, default=str)}
    tensors = {"vector": vector.vector.detach().float().cpu().contiguous()}
    atomic_write(target, lambda tmp: save_file(tensors, tmp, metadata=header))
    return target


def load_vector(
    path: str | os.PathLike[str], model: HookedModel | None = None, hook: str | None = None
) -> SteeringVector:
    """Read a vector written by :func:`save_vector`.

    With ``model`` it must have been built on that model (same weights fingerprint) at a hook the
    model has, with the right width; with ``hook`` it must be for that hook. Otherwise a
    :class:`SteeringVectorMismatchError` says what differs.
    """
    from safetensors import safe_open

    file = Path(path)
    if not file.is_file():
        raise LoadError(f"no steering vector file at {file}")
    try:
        with safe_open(str(file), framework="pt") as handle:
            header = handle.metadata() or {}
            tensor = handle.get_tensor("vector")
    except Exception as err:  # safetensors raises its own error types
        raise LoadError(f"{file} is not a readable safetensors steering vector: {err}") from err
    if header.get("format") != FORMAT:
        raise LoadError(f"{file} is not a circuitscope steering vector (format {header.get('format')!r})")
    version = header.get("format_version", "0")
    if not version.isdigit():
        raise LoadError(f"{file} is damaged: its format_version {version!r} is not a number; save the vector again")
    if int(version) > FORMAT_VERSION:
        raise LoadError(f"{file} has format version {version}; this circuitscope reads up to {FORMAT_VERSION}")
    vector = _vector_from(file, header.get("metadata", ""), tensor)
    if hook is not None and hook != vector.hook:
        raise SteeringVectorMismatchError(
            f"{file} holds a vector for hook {vector.hook!r}, not {hook!r}; build a new vector at {hook!r}"
        )
    if model is not None:
        vector.check(model)
    return vector


def _vector_from(file: Path, metadata: str, tensor: torch.Tensor) -> SteeringVector:
    """The vector described by the JSON ``metadata`` of ``file``; damaged metadata is refused, naming the file."""
    how = "the file is damaged: save the vector again (save_vector) or rebuild it"
    # Checked like a JSONL record (tasks/jsonl.py) on purpose, but one document with a file's own messages.
    try:
        meta = json.loads(metadata)
    except json.JSONDecodeError as err:
        raise LoadError(f"{file} has damaged metadata (not valid JSON: {err}); {how}") from err
    if not isinstance(meta, dict):
        raise LoadError(f"{file} has damaged metadata (not a JSON object); {how}")
    meta.setdefault("end_pos", None)
    meta.setdefault("details", {})
    wrong = [k for k, kind in _META_TYPES.items() if not isinstance(meta.get(k), kind) or isinstance(meta[k], bool)]
    if wrong:
        raise LoadError(f"{file} has damaged metadata: missing or mistyped {', '.join(wrong)}; {how}")
    if meta["d"] != tensor.shape[0]:
        raise LoadError(f"{file} is corrupt: metadata says d={meta['d']} but the tensor has {tensor.shape[0]}")
    fields = {key: meta[key] for key in _META_TYPES if key != "d"}  # d is the tensor's own width
    fields["coefficient"] = float(fields["coefficient"])
    try:
        return SteeringVector(tensor, **fields)
    except ValueError as err:  # NaN entries, an unknown mode or method, end_pos <= start_pos, not one direction
        raise LoadError(f"{file} does not hold a usable steering vector ({err}); {how}") from err
