"""Published IOI circuits, shipped as data with their source (``circuits/ioi/data/*.json``).

:func:`gpt2_small` is the circuit Wang et al. 2022 found in GPT-2 small: its seven classes of heads,
the clean logit difference and the faithfulness they report. The numbers live in
``data/gpt2_small_ioi.json`` (format ``circuitscope.published_circuit``, version 1), each with the
part of the paper it comes from; this module only reads and checks the file.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from circuitscope.circuits.graph import CircuitError
from circuitscope.circuits.ioi.result import HEAD_CLASSES, HeadClass, PublishedCircuit

__all__ = ["FORMAT", "VERSION", "gpt2_small", "published_circuit"]

FORMAT = "circuitscope.published_circuit"
VERSION = 1


def gpt2_small() -> PublishedCircuit:
    """Wang et al. 2022's IOI circuit in GPT-2 small (arXiv:2211.00593)."""
    return published_circuit("gpt2_small_ioi.json")


def published_circuit(name: str) -> PublishedCircuit:
    """A published circuit shipped with circuitscope, by its file name in ``circuits/ioi/data``."""
    path = resources.files("circuitscope.circuits.ioi").joinpath("data").joinpath(name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CircuitError(f"no published circuit {name!r} ships with circuitscope (reinstall it?)") from None
    return _parse(data, name)


def _parse(data: Any, source: str) -> PublishedCircuit:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CircuitError(f"{source} is not a published circuit file (no format {FORMAT!r})")
    if data.get("version") != VERSION:
        raise CircuitError(f"{source} has version {data.get('version')!r}; this circuitscope reads version {VERSION}")
    try:
        n_layers, n_heads = int(data["n_layers"]), int(data["n_heads"])
        classes: dict[HeadClass, list[tuple[int, int]]] = {}
        for name in HEAD_CLASSES:
            heads = [_head(h, n_layers, n_heads) for h in data["classes"][name]["heads"]]
            classes[name] = heads
        unknown = set(data["classes"]) - set(HEAD_CLASSES)
        if unknown:
            raise ValueError(f"unknown classes {sorted(unknown)}")
        src = data["source"]
        where = "; ".join(f"{k}: {v['where']}" for k, v in data["classes"].items())
        extra = "; ".join(f"{k}: {data[k]['where']}" for k in ("clean_logit_diff", "faithfulness") if data.get(k))
        return PublishedCircuit(
            model=str(data["model"]),
            n_layers=n_layers,
            source=f"{src['citation']} arXiv:{src['arxiv']}. Where: {where}; {extra}",
            classes=classes,
            clean_logit_diff=_value(data.get("clean_logit_diff")),
            faithfulness=_value(data.get("faithfulness")),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise CircuitError(f"{source} is malformed: {type(err).__name__}: {err}") from None


def _head(text: str, n_layers: int, n_heads: int) -> tuple[int, int]:
    layer, head = (int(x) for x in str(text).split("."))
    if not (0 <= layer < n_layers and 0 <= head < n_heads):
        raise ValueError(f"head {text} is outside {n_layers} layers x {n_heads} heads")
    return layer, head


def _value(entry: Any) -> float | None:
    return None if entry is None else float(entry["value"])
