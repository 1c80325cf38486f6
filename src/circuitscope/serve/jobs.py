"""Background jobs of the explorer (attribution graphs, feature statistics): a thread each, with progress and cancel.

A job is a function of an ``on_progress(stage, done, total)`` callback (the library's
:data:`~circuitscope.progress.OnProgress`) returning its result as JSON. The manager runs it in its own thread,
records each progress report, and, once the job is cancelled, makes the next report raise :class:`JobCancelled`,
so the library's hook contexts unwind and clean up as for any exception. States: ``queued`` -> ``running`` ->
``done`` | ``failed`` (the error message kept) | ``cancelled``. At most ``max_running`` jobs are queued or running
at once; one more is refused with :class:`~circuitscope.serve.errors.ServeBusyError` (429).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from circuitscope.errors import CircuitscopeError
from circuitscope.progress import OnProgress
from circuitscope.serve.errors import ServeBusyError, ServeInputError, ServeNotFoundError

__all__ = ["MAX_FINISHED", "Job", "JobCancelled", "JobManager", "JobProgress", "JobState", "Work"]

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
Work = Callable[[OnProgress], dict[str, Any]]
"""A job's function: called with the progress callback, returns the result JSON."""

MAX_FINISHED = 32
"""Finished jobs (and their results) a manager keeps; older ones are forgotten."""

_log = logging.getLogger(__name__)


class JobCancelled(Exception):  # noqa: N818 (a signal, not an error a user sees)
    """Raised from a cancelled job's progress callback, to unwind the library call it runs."""


class JobProgress(NamedTuple):
    """The last progress a job reported: ``done`` of ``total`` units of the library's ``stage``."""

    stage: str
    done: int
    total: int

    def to_json(self) -> dict[str, Any]:
        return dict(self._asdict())


@dataclass
class Job:
    """One background job and what is known of it."""

    id: str
    """The job's id in the API."""
    kind: str
    """What it computes (``graph``, ``feature_stats``)."""
    state: JobState = "queued"
    """Where it is in its life."""
    progress: JobProgress | None = None
    """Its last progress report (None before the first)."""
    error: str | None = None
    """Why it failed (None unless failed)."""
    result: dict[str, Any] | None = None
    """Its result JSON (None until done)."""
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    """Set when the job is cancelled."""
    thread: threading.Thread | None = None
    """The thread running it."""

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "progress": None if self.progress is None else self.progress.to_json(),
            "error": self.error,
        }


class JobManager:
    """The server's background jobs: started by :meth:`submit`, watched, cancelled, and joined at shutdown."""

    def __init__(self, max_running: int = 1) -> None:
        if max_running < 1:
            raise ValueError(f"max_running must be >= 1, got {max_running}")
        self.max_running = max_running
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def submit(self, kind: str, work: Work) -> Job:
        """Start ``work`` in a new thread; :class:`ServeBusyError` when ``max_running`` jobs are already active."""
        with self._lock:
            active = [j for j in self._jobs.values() if not j.finished]
            if len(active) >= self.max_running:
                raise ServeBusyError(
                    f"{len(active)} job(s) already running, this server's limit (--max-jobs {self.max_running}): "
                    "wait for one to finish or cancel it (DELETE /api/jobs/ID)"
                )
            job = Job(f"j{next(self._ids)}", kind)
            self._jobs[job.id] = job
            self._forget_old()
            job.thread = threading.Thread(target=self._run, args=(job, work), name=f"circuitscope-job-{job.id}")
            job.thread.daemon = True
        job.thread.start()
        return job

    def _forget_old(self) -> None:
        finished = [key for key, j in self._jobs.items() if j.finished]
        for key in finished[: max(0, len(finished) - MAX_FINISHED)]:
            del self._jobs[key]

    def _run(self, job: Job, work: Work) -> None:
        def on_progress(stage: str, done: int, total: int) -> None:
            if job.cancel_requested.is_set():
                raise JobCancelled(f"job {job.id} was cancelled")
            job.progress = JobProgress(stage, int(done), int(total))

        with self._lock:
            if job.cancel_requested.is_set():
                job.state = "cancelled"
                return
            job.state = "running"
        try:
            result = work(on_progress)
        except BaseException as err:  # a job's failure is its state; the server keeps serving
            self._failed(job, err)
            return
        with self._lock:
            if job.cancel_requested.is_set():
                job.state = "cancelled"
            else:
                job.result, job.state = result, "done"

    def _failed(self, job: Job, err: BaseException) -> None:
        with self._lock:
            if job.cancel_requested.is_set():
                job.state = "cancelled"
                return
            job.state = "failed"
            if isinstance(err, CircuitscopeError):
                job.error = str(err)
            else:
                job.error = f"internal error: {type(err).__name__}: {err}"
                _log.error("job %s (%s) failed", job.id, job.kind, exc_info=err)

    def get(self, key: str) -> Job:
        """The job ``key``; :class:`ServeNotFoundError` for an unknown (or forgotten) one."""
        with self._lock:
            if key not in self._jobs:
                raise ServeNotFoundError(f"no job {key!r:.40}: list the jobs with GET /api/jobs")
            return self._jobs[key]

    def jobs(self) -> list[Job]:
        """Every job kept, oldest first."""
        with self._lock:
            return list(self._jobs.values())

    def cancel(self, key: str) -> Job:
        """Ask job ``key`` to stop: it stops at its next progress report (a finished job is left as it is)."""
        job = self.get(key)
        with self._lock:
            if not job.finished:
                job.cancel_requested.set()
        return job

    def result(self, key: str) -> dict[str, Any]:
        """The result of a finished job; :class:`ServeInputError` while it runs or when it did not succeed."""
        job = self.get(key)
        if job.state != "done" or job.result is None:
            why = f"it failed: {job.error}" if job.state == "failed" else f"it is {job.state}"
            raise ServeInputError(f"job {key} has no result: {why}")
        return job.result

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel every running job and wait (up to ``timeout`` seconds each) for its thread to end."""
        for job in self.jobs():
            if not job.finished:
                job.cancel_requested.set()
        for job in self.jobs():
            if job.thread is not None:
                job.thread.join(timeout)

    def wait(self, key: str, timeout: float | None = None) -> Job:
        """Job ``key`` once its thread has ended (or ``timeout`` seconds have passed)."""
        job = self.get(key)
        if job.thread is not None:
            job.thread.join(timeout)
        return job
