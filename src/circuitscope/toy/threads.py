"""The thread count a small model trains fastest on, measured on this machine as it is now.

On a shared CPU, small products lose more to handing work between threads than they gain (a thread
that the scheduler parks stalls the others at every operation), so the default count (every core)
can be many times slower than one thread; on an idle machine a model with large enough products
gains from a second core. Which holds depends on the size and on the load, so it is measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

__all__ = ["fastest_count", "fastest_thread_count", "torch_threads"]


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's CPU thread count set to ``n`` inside the block, the previous count restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def fastest_count(work: Callable[[int], object], candidates: tuple[int, ...], repeats: int = 3) -> int:
    """The count in ``candidates`` for which ``work(count)`` is fastest.

    ``work`` runs once per count to warm up, then ``repeats`` times per count, the counts taking turns so
    that a change of load hits all of them; the best time of each count decides. ``work`` must leave no
    trace (e.g. a forward and backward pass whose gradients the caller clears).
    """
    if len(candidates) == 1:
        return candidates[0]
    best = dict.fromkeys(candidates, float("inf"))
    for n in candidates:
        work(n)
    for _ in range(repeats):
        for n in candidates:
            start = time.perf_counter()
            work(n)
            best[n] = min(best[n], time.perf_counter() - start)
    return min(candidates, key=lambda n: best[n])


def fastest_thread_count(work: Callable[[], object], candidates: tuple[int, ...] = (1, 2), repeats: int = 3) -> int:
    """The torch thread count in ``candidates`` (those above the cores torch may use dropped) under which
    ``work()`` is fastest, measured by :func:`fastest_count`; the thread count is restored afterwards."""
    previous = torch.get_num_threads()
    counts = tuple(n for n in candidates if 1 <= n <= max(previous, 1)) or (1,)

    def run(n: int) -> None:
        torch.set_num_threads(n)
        work()

    try:
        return fastest_count(run, counts, repeats)
    finally:
        torch.set_num_threads(previous)
