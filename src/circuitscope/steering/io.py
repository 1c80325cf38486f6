"""Steering-vector files: one safetensors file whose header metadata holds the JSON description, versioned."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from circuitscope.errors import LoadError
from circuitscope.steering.vector import SteeringVector, SteeringVectorMismatchError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["FORMAT", "FORMAT_VERSION", "load_vector", "save_vector"]

FORMAT = "circuitscope.steering_vector"
FORMAT_VERSION = 1


def save_vector(vector: SteeringVector, path: str | os.PathLike[str]) -> Path:
    """Write ``vector`` to ``path`` (``.safetensors``) atomically: a temporary file, then a rename."""
    from safetensors.torch import save_file

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "hook": vector.hook,
        "d": vector.d,
        "coefficient": vector.coefficient,
        "mode": vector.mode,
        "start_pos": vector.start_pos,
        "end_pos": vector.end_pos,
        "method": vector.method,
        "model": vector.model,
        "details": vector.details,
    }
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "metadata": json.dumps(meta, default=str)}
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        save_file({"vector": vector.vector.detach().float().cpu().contiguous()}, tmp, metadata=header)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
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
    version = int(header.get("format_version", "0"))
    if version > FORMAT_VERSION:
        raise LoadError(f"{file} has format version {version}; this circuitscope reads up to {FORMAT_VERSION}")
    meta = json.loads(header["metadata"])
    if int(meta["d"]) != tensor.shape[0]:
        raise LoadError(f"{file} is corrupt: metadata says d={meta['d']} but the tensor has {tensor.shape[0]}")
    vector = SteeringVector(
        tensor,
        meta["hook"],
        coefficient=float(meta["coefficient"]),
        mode=meta["mode"],
        start_pos=int(meta["start_pos"]),
        end_pos=None if meta.get("end_pos") is None else int(meta["end_pos"]),
        method=meta["method"],
        model=meta["model"],
        details=meta.get("details", {}),
    )
    if hook is not None and hook != vector.hook:
        raise SteeringVectorMismatchError(
            f"{file} holds a vector for hook {vector.hook!r}, not {hook!r}; build a new vector at {hook!r}"
        )
    if model is not None:
        vector.check(model)
    return vector
