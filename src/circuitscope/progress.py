"""Progress display for long work (rich), quiet when output is not a terminal or when asked."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from rich.progress import TaskID

__all__ = ["progress", "stages", "status"]

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


@contextmanager
def stages() -> Iterator[Callable[[str, int, int], None]]:
    """A ``report(stage, done, total)`` callback drawing one progress bar per stage on stderr.

    For analyses that report progress through a callback (circuit discovery, tracing). When
    output is not a terminal, each stage is announced once as a plain line.
    """
    if not _enabled():
        seen: set[str] = set()

        def plain(stage: str, done: int, total: int) -> None:
            if stage not in seen and os.environ.get("CIRCUITSCOPE_NO_PROGRESS", "") == "":
                seen.add(stage)
                print(f"{stage} ...", file=sys.stderr, flush=True)

        yield plain
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=min(done, total))

        yield update
