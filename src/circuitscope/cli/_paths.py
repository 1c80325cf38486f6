"""Output paths of the commands: checked before any work, and written without losing the results.

:func:`check_output_file` and :func:`check_output_dir` refuse, before the model loads, a path
that cannot be written: a folder where a file is expected (or the reverse), a parent path
component that is a file, or a location that does not accept new files (read-only, no
permission). Missing parent folders are fine: the writers create them (``mkdir -p``) when they
write; the check only proves they can, by creating and removing a probe file in the nearest
existing folder, so a refused or failed run leaves nothing behind.

:class:`Writes` writes a command's files after its work. A write that still fails (disk full,
folder removed meanwhile) is recorded instead of raised: the command prints its numbers anyway
(with an ``error`` entry under ``--json``), then says what could not be written and exits 1.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from circuitscope.cli._output import emit_json, fail
from circuitscope.errors import OutputError

__all__ = ["Writes", "check_output_dir", "check_output_file"]


def check_output_file(path: Path, option: str, example: str = "report.html") -> Path:
    """Refuse a file ``path`` (given as ``option``) that cannot be written; return it.

    ``example`` is a file name to suggest when ``path`` is a folder.
    """
    if path.is_dir():
        raise OutputError(
            f"{option} {path} is a folder, but a file is expected: give a file name, e.g. {path / example}"
        )
    _check_writable(path.parent, option, path)
    return path


def check_output_dir(path: Path, option: str) -> Path:
    """Refuse a folder ``path`` (given as ``option``) that cannot be created or written; return it."""
    if path.exists() and not path.is_dir():
        raise OutputError(
            f"{option} {path} is a file, but a folder is expected: give a folder name (it is created if missing)"
        )
    _check_writable(path, option, path)
    return path


def _check_writable(folder: Path, option: str, target: Path) -> None:
    existing = Path(os.path.abspath(folder))
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(
            f"cannot write {option} {target}: {existing} is a file, not a folder, so no folder can be created "
            "under it; choose another path"
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".circuitscope-write-check.", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(
            f"cannot write {option} {target}: {existing} does not accept new files ({err.strerror or err}); "
            "choose a folder you can write to"
        ) from err


class Writes:
    """The files a command writes after its work; a failed write is reported, never a lost result."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.failures: list[str] = []

    def attempt(self, what: str, path: Path, write: Callable[[], Any]) -> str | None:
        """Run ``write`` (which writes ``what`` to ``path``); the path written, or None if it failed."""
        try:
            written = write()
        except OSError as err:
            self.failures.append(f"{what} {path} ({err.strerror or err})")
            return None
        return str(written if isinstance(written, (str, os.PathLike)) else path)

    def error(self) -> OutputError | None:
        if not self.failures:
            return None
        return OutputError(
            f"could not write {'; '.join(self.failures)}. Nothing else is saved: the results are printed "
            "here; free disk space or choose another path and run again"
        )

    def emit_json(self, payload: dict[str, Any]) -> None:
        """Print ``payload`` (with an ``error`` entry if a write failed; then exit 1)."""
        err = self.error()
        if err is None:
            emit_json(payload)
            return
        emit_json({**payload, "error": type(err).__name__, "message": str(err)})
        raise typer.Exit(code=1)

    def done(self) -> None:
        """After the summary for people: say what could not be written (and exit 1)."""
        err = self.error()
        if err is not None:
            raise fail(err, as_json=False)
