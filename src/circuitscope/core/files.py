"""Files written atomically (a temporary name in the same folder, then a rename) and JSON objects read back.

An interrupted write leaves the previous file (or none) in place, never half a file. Every writer
of results, checkpoints and stores in circuitscope goes through :func:`atomic_write`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "atomic_write_json", "atomic_write_text", "read_json_object", "require_fields"]


def atomic_write(path: Path, write: Callable[[str], object], *, shared: bool = True) -> None:
    """Create or replace ``path`` by calling ``write(temporary_path)``, then renaming the file into place.

    ``shared`` makes the file readable by everyone (``0o644``; the temporary file is private);
    without it the file stays private to its owner. The temporary file is removed if anything fails.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        if shared:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: Path, text: str, *, shared: bool = True) -> None:
    """``text`` as UTF-8 to ``path``, atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), shared=shared)


def atomic_write_json(path: Path, payload: Any, *, shared: bool = True, **dump_options: Any) -> None:
    """``json.dump(payload, file, **dump_options)`` to ``path``, atomically (nothing is left if it fails midway)."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, **dump_options)

    atomic_write(path, write, shared=shared)


def read_json_object(path: Path, damaged: Callable[[str], Exception]) -> dict[str, Any]:
    """The JSON object in ``path``; ``damaged(message)`` is raised when it is unreadable, not JSON or not an object."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise damaged(f"{path} is damaged (not valid JSON: {err})") from err
    if not isinstance(payload, dict):
        raise damaged(f"{path} is damaged (not a JSON object)")
    return payload


def require_fields(
    path: Path,
    payload: dict[str, Any],
    kinds: Mapping[str, type | tuple[type, ...]],
    damaged: Callable[[str], Exception],
) -> None:
    """Raise ``damaged(message)`` naming each field of ``kinds`` that ``payload`` (from ``path``) lacks or mistypes."""
    wrong = [key for key, kind in kinds.items() if not isinstance(payload.get(key), kind)]
    if wrong:
        raise damaged(f"{path} is damaged (missing or mistyped fields: {', '.join(wrong)})")
