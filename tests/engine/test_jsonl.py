"""JSON Lines: values numbered by their line, blank lines skipped, a bad line raised as the caller's error."""

from __future__ import annotations

import json

import pytest

from circuitscope.engine.jsonl import json_lines


def _bad(number: int, err: json.JSONDecodeError) -> Exception:
    return ValueError(f"line {number}: {err.msg}")


def test_values_carry_their_line_numbers_and_blank_lines_are_skipped() -> None:
    lines = ['{"a": 1}', "", "   ", "[2, 3]", '"x"']
    assert list(json_lines(lines, _bad)) == [(1, {"a": 1}), (4, [2, 3]), (5, "x")]


def test_a_line_that_is_not_json_raises_the_callers_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"^line 3: Expecting value$") as caught:
        list(json_lines(['{"a": 1}', "", "not json"], _bad))
    assert isinstance(caught.value.__cause__, json.JSONDecodeError)
