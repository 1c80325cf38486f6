"""Shared output helpers: JSON to stdout, or a rich rendering for people."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from circuitscope.errors import CircuitscopeError

__all__ = ["emit_json", "fail"]


def emit_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def fail(err: CircuitscopeError | Exception, as_json: bool) -> typer.Exit:
    """Report an error (as JSON when asked) and return the exit to raise."""
    message = str(err)
    if as_json:
        emit_json({"error": type(err).__name__, "message": message})
    else:
        from rich.console import Console

        Console(stderr=True).print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(code=1)
