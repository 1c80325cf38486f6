"""A user's open work in the explorer (prompts, interventions, graphs), saved to a file and opened again.

A session is a versioned JSON file, ``<folder>/<name>.json``, written atomically (a temporary name, then a
rename)::

    {"format": "circuitscope.serve-session", "format_version": 1, "name": ..., "model_fingerprint": ...,
     "work": {"prompts": [...], "interventions": [...], "graphs": [...]}}

Names are restricted to letters, digits, ``_``, ``-`` and ``.`` (no path can be spelled with them). A session
saved on another model (another weights fingerprint) is refused when opened, naming both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuitscope.core.files import atomic_write_json, read_json_object
from circuitscope.errors import OutputError
from circuitscope.serve.errors import ServeInputError, ServeNotFoundError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "WORK_KEYS",
    "SessionStore",
    "SessionSummary",
    "check_work",
    "default_sessions_folder",
]

FORMAT = "circuitscope.serve-session"
FORMAT_VERSION = 1
WORK_KEYS = ("prompts", "interventions", "graphs")
"""The parts of a session's work; each is a list of whatever the page keeps."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def default_sessions_folder() -> Path:
    """``<CIRCUITSCOPE_HOME>/sessions``."""
    from circuitscope.core.loading import cache_home

    return cache_home() / "sessions"


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise ServeInputError(
            f"session name {name!r:.80} is not allowed: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (e.g. 'ioi-heads')"
        )
    return name


def check_work(work: object) -> dict[str, list[Any]]:
    """The work of a session: an object with lists under ``prompts``, ``interventions`` and ``graphs`` only."""
    if not isinstance(work, dict):
        raise ServeInputError(f"the session's work must be a JSON object, got {type(work).__name__}")
    unknown = sorted(set(work) - set(WORK_KEYS))
    if unknown:
        raise ServeInputError(f"the session's work has unknown parts {unknown}: it holds only {list(WORK_KEYS)}")
    wrong = [key for key in WORK_KEYS if not isinstance(work.get(key, []), list)]
    if wrong:
        raise ServeInputError(f"the session's {', '.join(wrong)} must be lists")
    return {key: list(work.get(key, [])) for key in WORK_KEYS}


@dataclass(frozen=True)
class SessionSummary:
    """A saved session as listed: its name and file."""

    name: str
    """The session's name."""
    path: Path
    """Its file."""
    model_fingerprint: str
    """The fingerprint of the model it was saved on."""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "model_fingerprint": self.model_fingerprint}


class SessionStore:
    """The sessions of one model in one folder (created on the first save)."""

    def __init__(self, folder: Path, model_fingerprint: str) -> None:
        self.folder = Path(folder)
        self.model_fingerprint = model_fingerprint

    def _path(self, name: object) -> Path:
        return self.folder / f"{_check_name(name)}.json"

    def save(self, name: object, work: object) -> SessionSummary:
        """Write (or replace) session ``name`` atomically."""
        path, checked = self._path(name), check_work(work)
        payload = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": name,
            "model_fingerprint": self.model_fingerprint,
            "work": checked,
        }
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, payload, shared=False)
        except OSError as err:
            raise OutputError(f"cannot save session {name!r} to {path} ({err}): free space or fix the folder") from err
        return SessionSummary(str(name), path, self.model_fingerprint)

    def saved(self) -> list[SessionSummary]:
        """The readable sessions in the folder, by name (damaged files are left out)."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                payload = self._read(path)
            except ServeInputError:
                continue
            found.append(SessionSummary(path.stem, path, str(payload["model_fingerprint"])))
        return found

    def _read(self, path: Path) -> dict[str, Any]:
        payload = read_json_object(path, ServeInputError)
        if payload.get("format") != FORMAT:
            raise ServeInputError(f"{path} is not an explorer session (format {payload.get('format')!r:.60})")
        version = payload.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
            raise ServeInputError(
                f"{path} has session format version {version!r:.20}; this circuitscope reads up to {FORMAT_VERSION}"
            )
        if not isinstance(payload.get("model_fingerprint"), str):
            raise ServeInputError(f"{path} is damaged (no model_fingerprint)")
        return payload

    def open(self, name: object) -> dict[str, Any]:
        """Session ``name``: refused when it was saved on another model."""
        path = self._path(name)
        if not path.is_file():
            raise ServeNotFoundError(f"no session {name!r} in {self.folder}: list them with GET /api/sessions")
        payload = self._read(path)
        if payload["model_fingerprint"] != self.model_fingerprint:
            raise ServeInputError(
                f"session {name!r} was saved on another model (fingerprint {payload['model_fingerprint']}, this "
                f"server's is {self.model_fingerprint}): start the server with the model it was saved on"
            )
        payload["work"] = check_work(payload.get("work"))
        return payload
