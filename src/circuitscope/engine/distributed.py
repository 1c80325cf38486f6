"""Work split across the processes of a ``torchrun`` launch, gathered on rank 0.

One mechanism for every analysis that runs past one process (patching, head-ablation scans,
causal tracing over a fact set, EAP over a dataset, activation collection):

1. :func:`process_group` joins the group ``torchrun`` describes (gloo on CPU, NCCL on CUDA) and
   leaves it on exit if it created it; without ``torchrun`` it yields a one-process :class:`World`
   and every function below is the identity, so the same code runs in one process unchanged;
2. :func:`check_same_arguments` refuses, before any work, a launch whose ranks disagree on the
   arguments (every rank names the keys that differ);
3. :func:`shard` gives a rank its share of ``range(n)``: by default a contiguous block (blocks differ
   in length by at most one and, concatenated in rank order, are ``range(n)``, so gathering in rank
   order restores the single-process order); ``strategy="round_robin"`` deals items ``rank, rank +
   size, ...`` instead, which balances work whose cost falls (or rises) along the range (patching's
   passes resuming at later layers, the head-ablation scan's); :func:`argument_digest` is the short
   hash of tokens or texts that :func:`check_same_arguments` compares in place of the data itself;
4. :func:`gather_to_main` (rank 0 gets the list of every rank's object, the others ``None``) and
   :func:`all_gather` (every rank gets it); :func:`concat_shards` joins tensors gathered that way.

The objects travel through ``torch.distributed``'s object collectives (in memory, never a file).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args

import torch
import torch.distributed as dist

from circuitscope.errors import CircuitscopeError

__all__ = [
    "SHARD_STRATEGIES",
    "DistributedError",
    "ShardStrategy",
    "World",
    "all_gather",
    "argument_digest",
    "check_same_arguments",
    "concat_shards",
    "current_world",
    "gather_to_main",
    "process_group",
    "shard",
]

T = TypeVar("T")

ShardStrategy = Literal["contiguous", "round_robin"]
"""How :func:`shard` deals ``range(n)``: contiguous blocks, or one item to each rank in turn."""
SHARD_STRATEGIES: tuple[str, ...] = get_args(ShardStrategy)


class DistributedError(CircuitscopeError, RuntimeError):
    """A distributed launch that cannot run as asked (ranks that disagree, a missing group)."""


@dataclass(frozen=True)
class World:
    """This process's place in the launch."""

    rank: int
    """This process's index, 0 to ``size - 1`` (0 without ``torchrun``)."""
    size: int
    """How many processes the launch has (1 without ``torchrun``)."""

    def __post_init__(self) -> None:
        if self.size < 1 or not 0 <= self.rank < self.size:
            raise DistributedError(f"rank {self.rank} of {self.size} processes is not a place in a launch")

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that gathers results and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.size > 1


def current_world() -> World:
    """The world of the initialised process group, or the one-process world without one."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World(0, 1)


def _launched_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as e:
        raise DistributedError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number; launch with torchrun") from e


@contextmanager
def process_group(backend: str | None = None) -> Iterator[World]:
    """The world of this launch: joins torchrun's group if there is one and nobody joined it yet.

    ``backend`` defaults to NCCL when CUDA is available and gloo otherwise. A group created here
    is destroyed on exit (also on an error); one that already existed is left alone.
    """
    created = False
    if _launched_size() > 1 and not (dist.is_available() and dist.is_initialized()):
        if not dist.is_available():
            raise DistributedError("this torch build has no torch.distributed; run in one process")
        dist.init_process_group(backend or ("nccl" if torch.cuda.is_available() else "gloo"))
        created = True
    try:
        yield current_world()
    finally:
        if created:
            dist.destroy_process_group()


def shard(n: int, world: World | None = None, strategy: ShardStrategy = "contiguous") -> range:
    """This rank's share of ``range(n)``: the shares of all ranks are disjoint and cover ``range(n)``.

    ``"contiguous"``: a block; the blocks in rank order concatenate to ``range(n)``, the first ``n % size``
    ranks getting one item more. ``"round_robin"``: ``range(rank, n, size)``, for work whose items grow
    cheaper (or dearer) along the range. A rank may get an empty range when ``n < size``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if strategy not in SHARD_STRATEGIES:
        raise ValueError(f"unknown shard strategy {strategy!r}; choose one of {SHARD_STRATEGIES}")
    w = world or current_world()
    if strategy == "round_robin":
        return range(w.rank, n, w.size)
    base, extra = divmod(n, w.size)
    start = w.rank * base + min(w.rank, extra)
    return range(start, start + base + (1 if w.rank < extra else 0))


def all_gather(obj: T, world: World | None = None) -> list[T]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` in one process)."""
    w = world or current_world()
    if not w.distributed:
        return [obj]
    out: list[Any] = [None] * w.size
    dist.all_gather_object(out, obj)
    return out


def gather_to_main(obj: T, world: World | None = None) -> list[T] | None:
    """Every rank's ``obj`` in rank order on rank 0; ``None`` on the other ranks."""
    w = world or current_world()
    if not w.distributed:
        return [obj]
    out: list[Any] | None = [None] * w.size if w.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def concat_shards(parts: Sequence[torch.Tensor], dim: int = 0) -> torch.Tensor:
    """Tensors gathered in rank order joined on ``dim`` (empty shards are skipped by ``torch.cat``)."""
    if not parts:
        raise ValueError("no shards to join")
    return torch.cat(list(parts), dim=dim)


def argument_digest(*parts: torch.Tensor | str) -> str:
    """A short hash (16 hex digits) of tensors' values and shapes and of texts, in order, for
    :func:`check_same_arguments`: ranks given other prompts or facts get another digest."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, str):
            data = part.encode("utf-8")
        else:
            digest.update(repr((str(part.dtype), tuple(part.shape))).encode())
            data = part.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()  # any dtype
        digest.update(len(data).to_bytes(8, "little") + data)  # lengths first: parts cannot run into each other
    return digest.hexdigest()[:16]


def check_same_arguments(arguments: Mapping[str, Any], world: World | None = None) -> None:
    """Refuse, on every rank, a launch whose ranks were given different arguments.

    ``arguments`` must be JSON-serialisable (``default=str`` turns paths and the like into text).
    Raises :class:`DistributedError` naming each key that differs and the values rank by rank.
    """
    w = world or current_world()
    if not w.distributed:
        return
    mine = json.loads(json.dumps(dict(arguments), sort_keys=True, default=str))
    every = all_gather(mine, w)
    keys = sorted(set().union(*(a.keys() for a in every)))
    differ = [k for k in keys if any(a.get(k) != every[0].get(k) for a in every[1:])]
    if differ:
        lines = "; ".join(f"{k}: " + ", ".join(f"rank {r}={a.get(k)!r}" for r, a in enumerate(every)) for k in differ)
        raise DistributedError(
            f"the {w.size} ranks of this launch were given different arguments ({lines}); "
            "launch every rank with the same command line"
        )
