"""The thread count is measured: the faster count wins whichever it is, and the count is restored."""

from __future__ import annotations

import time

import pytest
import torch

from circuitscope.toy.threads import fastest_thread_count


@pytest.mark.parametrize("slow", [1, 2])
def test_the_faster_count_wins_and_the_count_is_restored(slow: int) -> None:
    outside = torch.get_num_threads()  # 1 in each of make test's two processes: allow 2 for this test
    torch.set_num_threads(2)
    try:
        _check_the_faster_count_wins(slow)
    finally:
        torch.set_num_threads(outside)


def _check_the_faster_count_wins(slow: int) -> None:
    before = torch.get_num_threads()
    seen: list[int] = []

    def work() -> None:  # 20 ms on the slow count, nothing on the other
        seen.append(torch.get_num_threads())
        time.sleep(0.02 if torch.get_num_threads() == slow else 0.0)

    assert fastest_thread_count(work, (1, 2), repeats=2) == 3 - slow
    assert torch.get_num_threads() == before
    assert seen == [1, 2, 1, 2, 1, 2]  # a warm-up each, then the counts take turns


def test_a_single_candidate_is_not_timed() -> None:
    assert fastest_thread_count(lambda: pytest.fail("timed"), (1,)) == 1
