"""Parsing helpers for list options shared by the steering, probing and diffing commands."""

from __future__ import annotations

import typer

__all__ = ["parse_floats", "parse_layers"]


def parse_layers(text: str, n_layers: int) -> list[int]:
    """``"2-12"``, ``"0,3,6"``, ``"all"`` or a mix (``"0-3,8"``) -> layer indices, checked against the model."""
    if text.strip().lower() == "all":
        return list(range(n_layers))
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, part)
                out += list(range(int(lo), int(hi) + 1))
            elif part:
                out.append(int(part))
    except ValueError as err:
        raise typer.BadParameter(f"layers must look like '2-12' or '0,3,6', got {text!r}") from err
    bad = [x for x in out if not 0 <= x < n_layers]
    if bad or not out:
        raise typer.BadParameter(f"layers {bad or text!r} are outside the model's 0..{n_layers - 1}")
    return sorted(dict.fromkeys(out))


def parse_floats(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise typer.BadParameter(f"expected numbers separated by commas, got {text!r}") from err
    if not values:
        raise typer.BadParameter("give at least one number")
    return values
