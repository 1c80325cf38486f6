"""Progress of long work, always on stderr: bars on a terminal, periodic plain lines otherwise.

On a terminal, rich draws a bar per stage. When stderr is not a terminal (a log file,
``make demo``, CI), each stage prints a plain line when it starts, then at most every
``CIRCUITSCOPE_PROGRESS_EVERY`` seconds (default 10) a line with the counts, the time elapsed
and an estimate of the time left, and a last line when it completes::

    circuit: eap-ig 120/5644 (2%), 0:12 elapsed, ~9:25 left

``CIRCUITSCOPE_NO_PROGRESS=1`` silences all of it. stdout is never written to (``--json``
output goes there).

Library functions report through an optional ``on_progress(stage, done, total)`` callback
(:data:`OnProgress`); commands pass the callback of :func:`stages`. A library loop over its units
of work iterates with :func:`track`, which calls the callback after each unit, or draws the default
display of :func:`progress` when the caller gave no callback (``None``); :data:`SILENT` reports nothing.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from rich.progress import TaskID

__all__ = [
    "DEFAULT_EVERY",
    "EVERY_ENV",
    "NO_PROGRESS_ENV",
    "SILENT",
    "OnProgress",
    "bars_enabled",
    "progress",
    "stage",
    "stages",
    "status",
    "track",
]

T = TypeVar("T")

OnProgress = Callable[[str, int, int], None]
"""``on_progress(stage, done, total)``: ``done`` of ``total`` units of ``stage`` are complete."""
Clock = Callable[[], float]


def _silent(_stage: str, _done: int, _total: int) -> None:
    return None


SILENT: OnProgress = _silent
"""An ``on_progress`` that reports nothing (pass it to run a library function quietly)."""

NO_PROGRESS_ENV = "CIRCUITSCOPE_NO_PROGRESS"
"""Set (to anything but the empty string) to silence every progress display."""
EVERY_ENV = "CIRCUITSCOPE_PROGRESS_EVERY"
"""Seconds between two plain progress lines of a stage when stderr is not a terminal."""
DEFAULT_EVERY = 10.0


def _silenced() -> bool:
    return os.environ.get(NO_PROGRESS_ENV, "") != ""


def _enabled() -> bool:
    return not _silenced() and sys.stderr.isatty()


def bars_enabled() -> bool:
    """Whether progress is drawn as bars (stderr is a terminal and progress is not silenced)."""
    return _enabled()


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _interval(every: float | None) -> float:
    if every is not None:
        return max(0.0, every)
    raw = os.environ.get(EVERY_ENV, "").strip()
    if not raw:
        return DEFAULT_EVERY
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        _say(f"{EVERY_ENV}={raw!r} is not a number of seconds >= 0 (e.g. 30); using {DEFAULT_EVERY:g} s")
        return DEFAULT_EVERY
    return value


def _duration(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on."""
    hours, rest = divmod(max(0, round(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _counts(done: int, total: int | None) -> str:
    if total is None:
        return str(done)
    if total <= 0:
        return f"{done}/{total}"
    return f"{done}/{total} ({math.floor(100 * min(done, total) / total)}%)"


class _PlainLines:
    """The plain lines of one stage: when it starts, at most every ``every`` seconds, when it completes."""

    def __init__(self, name: str, every: float, clock: Clock) -> None:
        self.name = name
        self.every = every
        self.clock = clock
        self.started = 0.0
        self.first_done: int | None = None
        self.printed_at = -math.inf
        self.finished = False

    def update(self, done: int, total: int | None) -> None:
        if self.finished:
            return
        now = self.clock()
        if self.first_done is None:  # the rate is measured from here (a resumed run starts at done > 0)
            self.started, self.first_done = now, done
            if total is None or done < total:
                _say(f"{self.name} {_counts(done, total)} ...")
                self.printed_at = now
                return
        if total is not None and done >= total:
            self.finish(done, total)
        elif now - self.printed_at >= self.every:
            _say(f"{self.name} {_counts(done, total)}, {self._times(done, total, now)}")
            self.printed_at = now

    def finish(self, done: int, total: int | None) -> None:
        """The last line (once): the counts and the stage's wall time."""
        if self.finished:
            return
        self.finished = True
        _say(f"{self.name} {_counts(done, total)}, done in {_duration(self.clock() - self.started)}")

    def _times(self, done: int, total: int | None, now: float) -> str:
        elapsed = now - self.started
        text = f"{_duration(elapsed)} elapsed"
        if total is None:
            return text
        first = self.first_done or 0
        if done <= first or elapsed <= 0:
            return text + ", estimating the time left"
        left = (total - done) * elapsed / (done - first)
        return text + f", ~{_duration(left)} left"


@contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner with a message on stderr while a block runs (a plain line when not a terminal)."""
    if not _enabled():
        if not _silenced():
            _say(message + " ...")
        yield
        return
    from rich.console import Console
    from rich.markup import escape

    with Console(stderr=True).status(escape(message)):  # user text (a model path) is never markup
        yield


def progress(
    items: Iterable[T],
    description: str,
    total: int | None = None,
    *,
    every: float | None = None,
    clock: Clock | None = None,
) -> Iterator[T]:
    """Iterate with a progress bar on stderr (periodic plain lines when not a terminal; see the module).

    ``every`` (seconds between plain lines; default ``CIRCUITSCOPE_PROGRESS_EVERY`` or 10) and
    ``clock`` (default :func:`time.monotonic`) are for tests.
    """
    if total is None and isinstance(items, Sized):
        total = len(items)
    if _silenced():
        yield from items
        return
    if not sys.stderr.isatty():
        lines = _PlainLines(description, _interval(every), clock or time.monotonic)
        lines.update(0, total)
        done = 0
        for item in items:
            yield item  # resumes when the caller asks for the next item: this one is done
            done += 1
            lines.update(done, total)
        lines.finish(done, total)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import track

    yield from track(items, description=escape(description), total=total, console=Console(stderr=True), transient=True)


@contextmanager
def stages(label: str = "", *, every: float | None = None, clock: Clock | None = None) -> Iterator[OnProgress]:
    """An ``on_progress(stage, done, total)`` callback drawing one progress bar per stage on stderr.

    When stderr is not a terminal, each stage prints plain lines instead (see the module),
    prefixed with ``label`` (the command, e.g. ``"circuit"``). ``every`` and ``clock`` are as in
    :func:`progress`.
    """
    if _silenced():
        yield lambda _stage, _done, _total: None
        return
    if not sys.stderr.isatty():
        interval, now = _interval(every), clock or time.monotonic
        prefix = f"{label}: " if label else ""
        lines: dict[str, _PlainLines] = {}

        def plain(stage: str, done: int, total: int) -> None:
            if stage not in lines or (lines[stage].finished and done < total):  # new, or run again
                lines[stage] = _PlainLines(prefix + stage, interval, now)
            lines[stage].update(done, total)

        yield plain
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(escape(stage), total=total)
            elif bar.tasks[tasks[stage]].finished and done < total:  # the same stage run again
                bar.reset(tasks[stage], total=total)
            bar.update(tasks[stage], total=total, completed=min(done, total))

        yield update


def track(
    items: Iterable[T], stage: str, on_progress: OnProgress | None = None, total: int | None = None
) -> Iterator[T]:
    """Iterate over a library function's units of work, reporting each one done.

    With a callback, ``on_progress(stage, done, total)`` is called once before the first unit
    (``done=0``) and after each unit; with ``None``, the default display of :func:`progress`.
    ``total`` defaults to ``len(items)``.
    """
    if on_progress is None:
        yield from progress(items, stage, total)
        return
    if total is None:
        total = len(items) if isinstance(items, Sized) else 0
    on_progress(stage, 0, total)
    for done, item in enumerate(items, start=1):
        yield item
        on_progress(stage, done, max(total, done))


@contextmanager
def stage(name: str, on_progress: OnProgress | None = None) -> Iterator[None]:
    """A stage of a library function without counts, one unit of work: reported (through :func:`track`)
    when the block starts and when it ends."""
    unit = track(range(1), name, on_progress)
    next(unit)
    yield
    next(unit, None)  # the unit is done: the stage completes
