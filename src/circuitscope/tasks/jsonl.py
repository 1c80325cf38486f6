"""User-defined tasks from a JSONL file: one ``{"clean", "corrupted", "correct", "incorrect"}`` object per line."""

from __future__ import annotations

import codecs
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from circuitscope.engine.jsonl import json_lines
from circuitscope.tasks.metrics import MetricName
from circuitscope.tasks.task import Task, TaskError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["load_jsonl_task", "read_task_text"]

_KEYS = ("clean", "corrupted", "correct", "incorrect")


def read_task_text(file: Path, what: str = "task file") -> str:
    """The text of a UTF-8 file (a BOM is allowed); a clear error naming the file, and the line of a bad byte."""
    if file.is_dir():
        raise TaskError(f"{what} {str(file)!r} is a folder; pass the path of the file itself")
    if not file.is_file():
        raise TaskError(f"{what} {str(file)!r} does not exist")
    try:
        data = file.read_bytes()
    except OSError as err:
        raise TaskError(f"{what} {str(file)!r} cannot be read ({err.strerror or err}); check its permissions") from err
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise TaskError(
            f"{file}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x} at column {column}); save the file as UTF-8"
        ) from err


def load_jsonl_task(model: HookedModel, path: str | os.PathLike[str], metric: MetricName = "logit_diff") -> Task:
    """Read prompt pairs; a malformed line is an error naming its line number."""
    file = Path(path)
    text = read_task_text(file)
    rows: dict[str, list[str]] = {k: [] for k in _KEYS}
    where: list[str] = []

    def bad_line(number: int, err: json.JSONDecodeError) -> TaskError:
        return TaskError(f"{file}:{number}: not valid JSON ({err.msg} at column {err.colno})")

    for number, record in json_lines(text.split("\n"), bad_line):  # not splitlines: U+2028 etc. may sit in a string
        if not isinstance(record, dict):
            raise TaskError(f"{file}:{number}: expected an object with keys {list(_KEYS)}, got {type(record).__name__}")
        missing = [k for k in _KEYS if k not in record]
        if missing:
            raise TaskError(f"{file}:{number}: missing key(s) {missing}; each line needs {list(_KEYS)}")
        bad = [k for k in _KEYS if not isinstance(record[k], str) or not record[k]]
        if bad:
            raise TaskError(f"{file}:{number}: {bad} must be non-empty strings")
        for k in _KEYS:
            rows[k].append(record[k])
        where.append(f"{file}:{number}")
    if not where:
        raise TaskError(f"task file {str(file)!r} is empty: add one JSON object per line with keys {list(_KEYS)}")
    return Task.from_pairs(
        model, rows["clean"], rows["corrupted"], rows["correct"], rows["incorrect"],
        name=file.stem, metric=metric, where=where,
    )  # fmt: skip
