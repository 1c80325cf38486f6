"""One declarative adapter per Hugging Face model family.

Each module in this package defines ``ADAPTER`` (an :class:`Adapter`). Adding a
family means adding one file here: the registry discovers it. A family transformers
does not ship keeps its model classes beside its adapter, in a package (``toy/``).
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from circuitscope.errors import UnsupportedModelError
from circuitscope.models.base import Adapter

__all__ = ["Adapter", "adapter_for", "all_adapters"]


@cache
def all_adapters() -> tuple[Adapter, ...]:
    """Every adapter in this package, discovered by module (not at import time)."""
    found: list[Adapter] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        adapter = getattr(module, "ADAPTER", None)
        if isinstance(adapter, Adapter):
            found.append(adapter)
    return tuple(sorted(found, key=lambda a: a.family))


def adapter_for(model_type: str) -> Adapter:
    """The adapter covering a Hugging Face ``config.model_type``."""
    for adapter in all_adapters():
        if model_type in adapter.model_types:
            return adapter
    supported = sorted(t for a in all_adapters() for t in a.model_types)
    raise UnsupportedModelError(
        f"no circuitscope adapter for model_type {model_type!r}; supported: {', '.join(supported)}. "
        "To add a family, add one adapter file to circuitscope/models/."
    )
