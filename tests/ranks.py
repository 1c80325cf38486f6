"""Run a function in N gloo processes on this CPU, the way ``torchrun`` would, and collect what each returns.

``run_ranks(fn, 2, *args)`` starts two fresh Python processes (the ``spawn`` start method),
sets the variables ``torchrun`` sets (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT`` on a free local port), calls ``fn(*args)`` in each (``fn``
must be importable: a module-level function of a test module), and returns the results in
rank order. ``fn`` joins the group itself, through
:func:`circuitscope.engine.distributed.process_group`, as library code does under torchrun.
An exception in a rank is raised here with that rank's traceback.
"""

from __future__ import annotations

import os
import pickle
import socket
import traceback
from collections.abc import Callable
from typing import Any

import torch.multiprocessing as mp

__all__ = ["free_port", "run_ranks"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank_main(rank: int, size: int, port: int, fn: Callable[..., Any], args: tuple[Any, ...], queue: Any) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(size),
        LOCAL_WORLD_SIZE=str(size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        CIRCUITSCOPE_NO_PROGRESS="1",
    )
    import torch

    torch.set_num_threads(1)
    try:
        # plain pickle, not the queue's: torch's queue reducers share tensor memory, which is gone once this rank exits
        queue.put((rank, True, pickle.dumps(fn(*args))))
    except BaseException:  # the parent re-raises it with this rank's traceback
        queue.put((rank, False, traceback.format_exc()))


def run_ranks(fn: Callable[..., Any], size: int, *args: Any, timeout: float = 600.0) -> list[Any]:
    """``fn(*args)`` in ``size`` gloo processes; their return values in rank order."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, size, port, fn, args, queue)) for r in range(size)]
    for p in procs:
        p.start()
    results: dict[int, Any] = {}
    failures: list[str] = []
    try:
        for _ in range(size):
            rank, ok, value = queue.get(timeout=timeout)
            if ok:
                results[rank] = pickle.loads(value)  # bytes this test run's own child wrote
            else:
                failures.append(f"rank {rank} failed:\n{value}")
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    if failures:
        raise AssertionError("\n".join(failures))
    return [results[r] for r in range(size)]
