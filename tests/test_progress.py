"""The progress protocol: library loops report through track(), stages through stage()."""

from __future__ import annotations

import pytest

from circuitscope.progress import SILENT, stage, track


def test_track_reports_zero_then_each_unit_done() -> None:
    calls: list[tuple[str, int, int]] = []
    assert list(track("abc", "letters", lambda *c: calls.append(c))) == ["a", "b", "c"]
    assert calls == [("letters", 0, 3), ("letters", 1, 3), ("letters", 2, 3), ("letters", 3, 3)]


def test_track_of_an_iterator_without_a_length_counts_what_it_gave() -> None:
    calls: list[tuple[str, int, int]] = []
    assert list(track(iter([5, 6]), "numbers", lambda *c: calls.append(c))) == [5, 6]
    assert calls == [("numbers", 0, 0), ("numbers", 1, 1), ("numbers", 2, 2)]


def test_stage_is_one_unit_reported_when_it_starts_and_ends() -> None:
    calls: list[tuple[str, int, int]] = []
    with stage("loading", lambda *c: calls.append(c)):
        assert calls == [("loading", 0, 1)]
    assert calls == [("loading", 0, 1), ("loading", 1, 1)]


def test_silent_reports_nothing_and_a_failing_stage_does_not_complete(capsys: pytest.CaptureFixture[str]) -> None:
    assert list(track(range(3), "quiet", SILENT)) == [0, 1, 2]
    calls: list[tuple[str, int, int]] = []
    with pytest.raises(RuntimeError), stage("doomed", lambda *c: calls.append(c)):
        raise RuntimeError("boom")
    assert calls == [("doomed", 0, 1)]
    assert capsys.readouterr().err == ""
