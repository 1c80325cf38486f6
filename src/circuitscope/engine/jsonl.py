"""JSON Lines: one JSON value a line, blank lines skipped, a line that is not JSON reported by its number."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["json_lines"]


def json_lines(
    lines: Iterable[str], bad_line: Callable[[int, json.JSONDecodeError], Exception]
) -> Iterator[tuple[int, Any]]:
    """``(number, value)`` of each non-blank line (numbered from 1, blank lines counted).

    A line that is not JSON raises ``bad_line(number, error)`` (the caller's error, naming its file).
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise bad_line(number, err) from err
        yield number, value
