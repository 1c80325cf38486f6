"""The distributed mechanics: shards that tile the range, gathers in rank order, ranks that disagree refused."""

from __future__ import annotations

import pytest
import torch

from circuitscope.engine.distributed import (
    DistributedError,
    World,
    all_gather,
    argument_digest,
    check_same_arguments,
    concat_shards,
    gather_to_main,
    process_group,
    shard,
)
from tests.ranks import run_ranks


@pytest.mark.parametrize("n", [0, 1, 2, 5, 7, 64])
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_shards_tile_the_range_in_rank_order(n: int, size: int) -> None:
    blocks = [shard(n, World(r, size)) for r in range(size)]
    assert [i for b in blocks for i in b] == list(range(n))
    assert max(len(b) for b in blocks) - min(len(b) for b in blocks) <= 1


@pytest.mark.parametrize("n", [0, 1, 5, 7])
@pytest.mark.parametrize("size", [1, 2, 3])
def test_round_robin_deals_one_item_to_each_rank_in_turn(n: int, size: int) -> None:
    shares = [shard(n, World(r, size), "round_robin") for r in range(size)]
    assert sorted(i for s in shares for i in s) == list(range(n))  # disjoint, and every item once
    assert all(all(i % size == r for i in s) for r, s in enumerate(shares))  # item i goes to rank i mod size
    with pytest.raises(ValueError, match="unknown shard strategy 'random'"):
        shard(n, World(0, size), "random")  # type: ignore[arg-type]  # the bad input under test


def test_the_argument_digest_tells_tokens_and_texts_apart() -> None:
    tokens = torch.tensor([[1, 2, 3]])
    assert argument_digest(tokens, "a") == argument_digest(tokens.clone(), "a")
    others = [argument_digest(tokens.view(3, 1), "a"), argument_digest(tokens + 1, "a"), argument_digest(tokens, "b"),
              argument_digest(tokens.float(), "a"), argument_digest("ab", "c"), argument_digest("a", "bc")]  # fmt: skip
    assert len({argument_digest(tokens, "a"), *others}) == 7  # shape, values, text, dtype, where a text ends


def test_one_process_is_the_identity() -> None:
    with process_group() as w:
        assert w == World(0, 1) and w.is_main and not w.distributed
        assert all_gather("x") == ["x"] and gather_to_main(3) == [3]
        check_same_arguments({"a": 1})


def test_a_world_must_be_a_place() -> None:
    with pytest.raises(DistributedError, match="rank 2 of 2"):
        World(2, 2)


def _gather_squares(n: int) -> tuple[int, list[torch.Tensor] | None, list[int]]:
    with process_group() as w:
        mine = torch.tensor([float(i * i) for i in shard(n, w)])
        return w.rank, gather_to_main(mine, w), all_gather(w.rank, w)


def test_two_ranks_gather_what_one_process_computes() -> None:
    (r0, on_main, every0), (r1, on_other, every1) = run_ranks(_gather_squares, 2, 7)
    assert (r0, r1) == (0, 1) and on_other is None and every0 == every1 == [0, 1]
    assert on_main is not None
    assert torch.equal(concat_shards(on_main), torch.tensor([float(i * i) for i in range(7)]))


def _disagree() -> str:
    with process_group() as w:
        try:
            check_same_arguments({"layer": 3 + w.rank, "model": "m"}, w)
        except DistributedError as e:
            return str(e)
        return "accepted"


def test_ranks_that_disagree_are_refused_on_every_rank() -> None:
    messages = run_ranks(_disagree, 2)
    for m in messages:
        assert "layer: rank 0=3, rank 1=4" in m and "model" not in m.split("(")[1].split(")")[0]
