"""Activation patching across the ranks of a launch: the gathered result equals the one-process result.

Two gloo ranks (``tests/ranks.py``) split the patched forward passes; each rank counts its own passes
and returns the whole result. One process at one thread (the ranks' thread count) gives the reference,
so the scores agree exactly. A launch whose ranks were given different arguments is refused first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import circuitscope as cs
from circuitscope.analysis.patching import activation_patching
from circuitscope.engine.distributed import DistributedError, process_group
from circuitscope.tasks import Task
from tests.ranks import run_ranks
from tests.tiny_models import TinyModels, random_task

TARGETS = ("resid_pre", "head_out")


def _task() -> Task:
    return random_task(3, 6, seed=0, corrupt=(2, 3), answer_from_end=(1, 2, 1))


def _sweeps(model: cs.HookedModel, task: Task) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for target in TARGETS:
        passes: dict[str, int] = {}

        def count(stage: str, _done: int, total: int, passes: dict[str, int] = passes) -> None:
            passes[stage] = total

        result = activation_patching(model, task, target, batch_size=6, on_progress=count)
        out[target] = result.raw
        out[f"{target}_passes"] = passes[f"patching {target}"]
    return out


def on_rank(folder: str, task: Task) -> dict[str, Any]:
    """One rank: the sweeps inside the launch's group, then a sweep given another batch size on each rank."""
    model = cs.load_model(folder)
    with process_group() as world:
        out = {"rank": world.rank, **_sweeps(model, task)}
        try:
            activation_patching(model, task, "head_out", batch_size=6 + world.rank)
            out["refused"] = None
        except DistributedError as e:
            out["refused"] = str(e)
        return out


@pytest.fixture(scope="module")
def folder(tiny: TinyModels) -> Path:
    return tiny.folder("llama_gqa")


@pytest.fixture(scope="module")
def ranks(folder: Path) -> list[dict[str, Any]]:
    return run_ranks(on_rank, 2, str(folder), _task())


@pytest.mark.slow  # two spawned processes importing torch and transformers (~15 s busy)
def test_two_ranks_give_the_one_process_result(folder: Path, ranks: list[dict[str, Any]]) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the ranks' thread count: the same kernels, the same rounding
    try:
        single = _sweeps(cs.load_model(str(folder)), _task())
    finally:
        torch.set_num_threads(before)
    assert [r["rank"] for r in ranks] == [0, 1]
    for target in TARGETS:
        assert not single[target].isnan().any()
        for r in ranks:
            torch.testing.assert_close(r[target], single[target], rtol=0, atol=0)
        shares = [r[f"{target}_passes"] for r in ranks]
        assert sum(shares) == single[f"{target}_passes"] and min(shares) >= 1, (target, shares)


@pytest.mark.slow  # the same launch
def test_ranks_that_disagree_are_refused_before_any_work(ranks: list[dict[str, Any]]) -> None:
    for r in ranks:
        assert r["refused"] is not None and "batch_size: rank 0=6, rank 1=7" in r["refused"]
