"""Shared output helpers: JSON to stdout, or a rich rendering for people."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import typer

from circuitscope.errors import CircuitscopeError

__all__ = ["emit_json", "fail"]


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
