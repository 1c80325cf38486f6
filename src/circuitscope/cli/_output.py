"""Shared output helpers: JSON to stdout, or a rich rendering for people."""

from __future__ import annotations

import json
import math
import sys
from types import TracebackType
from typing import Any

import typer

from circuitscope.errors import CircuitscopeError

__all__ = ["emit_json", "fail", "reporting_errors"]


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def emit_json(payload: dict[str, Any]) -> None:
    """Strict JSON on stdout (NaN and infinities become null)."""
    sys.stdout.write(json.dumps(_finite(payload), indent=2, default=str, allow_nan=False) + "\n")


def fail(err: CircuitscopeError | Exception, as_json: bool) -> typer.Exit:
    """Report an error (as JSON when asked) and return the exit to raise."""
    message = str(err)
    if as_json:
        emit_json({"error": type(err).__name__, "message": message})
    else:
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    return typer.Exit(code=1)


class reporting_errors:  # noqa: N801 (used as a statement: ``with reporting_errors(as_json):``)
    """Inside it, a :class:`~circuitscope.errors.CircuitscopeError` (or one of ``also``) is reported, then exit 1.

    The one ``try: ... except CircuitscopeError as err: raise fail(err, as_json)`` of every command.
    """

    def __init__(self, as_json: bool, *also: type[Exception]) -> None:
        self.as_json = as_json
        self.caught: tuple[type[Exception], ...] = (CircuitscopeError, *also)

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if isinstance(err, self.caught):
            raise fail(err, self.as_json) from err
