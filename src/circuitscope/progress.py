"""Progress display for long work (rich), quiet when output is not a terminal or when asked."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

__all__ = ["progress", "status"]

T = TypeVar("T")


def _enabled() -> bool:
    return os.environ.get("CIRCUITSCOPE_NO_PROGRESS", "") == "" and sys.stderr.isatty()


@contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner with a message on stderr while a block runs (a plain line when not a terminal)."""
    if not _enabled():
        if os.environ.get("CIRCUITSCOPE_NO_PROGRESS", "") == "":
            print(message + " ...", file=sys.stderr, flush=True)
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield


def progress(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar on stderr."""
    if not _enabled():
        yield from items
        return
    from rich.console import Console
    from rich.progress import track

    yield from track(items, description=description, total=total, console=Console(stderr=True), transient=True)
