"""Head-ablation scans and EAP over a dataset on 2 gloo ranks equal one process, each rank does only its share,
and ranks that call them with different batch sizes are refused.

One launch runs every check (spawned ranks import torch once): each rank loads the same tiny model
folder, runs the sweeps, and returns its results and how many passes it ran. One process at the
same batch sizes and thread count (1) gives the reference. Each pass (a layer's group of ablated heads,
a batch of prompts) is the same computation on a rank as in one process, and the ranks' shares are
joined in one process's order, so the comparison is exact (tolerance 0), NaNs (EAP's non-edges) included.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import circuitscope as cs
from circuitscope.tasks import Task
from tests.distributed.sweeps import on_rank, sweeps
from tests.ranks import run_ranks
from tests.tiny_models import TinyModels, random_task

pytestmark = pytest.mark.slow  # two spawned ranks importing torch and transformers (~15 s, ~85 s on a busy CPU)

PROMPTS = 5


def _task() -> Task:
    return random_task(PROMPTS, 7, seed=3, corrupt=(1, 4), answer_from_end=(1, 2, 1, 3, 1), name="t")


MODEL = "llama_gqa"
"""The tiny model, saved to a folder that every rank and the one process load."""


@pytest.fixture(scope="module")
def ranks(tiny: TinyModels) -> list[dict[str, Any]]:
    """What each of 2 ranks returns, in rank order."""
    return run_ranks(on_rank, 2, str(tiny.folder(MODEL)), _task())


@pytest.fixture(scope="module")
def single(tiny: TinyModels) -> dict[str, Any]:
    """The one-process sweeps, on the ranks' thread count (1): the same kernels, the same rounding."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return sweeps(cs.load_model(str(tiny.folder(MODEL))), _task())
    finally:
        torch.set_num_threads(before)


KEYS = ("scan", "importance", "eap", "eap_ig", "eap_resample")


@pytest.mark.parametrize("key", KEYS)
def test_every_rank_gets_the_one_process_result(ranks: list[dict[str, Any]], single: dict[str, Any], key: str) -> None:
    assert [r["rank"] for r in ranks] == [0, 1]
    assert not single[key].isnan().all()
    for r in ranks:
        torch.testing.assert_close(r[key], single[key], rtol=0, atol=0, equal_nan=True)
    for clean in ("scan_clean", "eap_clean", "eap_ig_clean"):
        assert ranks[0][clean] == ranks[1][clean] == single[clean]


def test_each_rank_runs_only_its_share(ranks: list[dict[str, Any]], single: dict[str, Any]) -> None:
    one = single["passes"]
    assert one == {"mean-ablating heads": 4, "zero-ablating each head on 35 tokens": 4, "eap": 3, "eap-ig": 6}
    shares = [r["passes"] for r in ranks]
    assert [s["mean-ablating heads"] for s in shares] == [2, 2]
    assert [s["eap"] for s in shares] == [2, 1] and [s["eap-ig"] for s in shares] == [4, 2]
    assert all(sum(s[k] for s in shares) == one[k] for k in one)


def test_ranks_given_different_batch_sizes_are_refused(ranks: list[dict[str, Any]]) -> None:
    for r in ranks:
        assert "batch_size: rank 0=10, rank 1=11" in r["refused"]["scan"]
        assert "batch_size: rank 0=2, rank 1=3" in r["refused"]["eap"]
