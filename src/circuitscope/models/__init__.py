"""One declarative adapter per Hugging Face model family.

Each module in this package defines ``ADAPTER`` (an :class:`Adapter`). Adding a
family means adding one file here: the registry discovers it. A family transformers
does not ship keeps its model classes beside its adapter, in a package (``toy/``).
Two modules hold family facts that are not one family's: ``base.py`` (the Adapter itself) and
``gguf_limits.py`` (what transformers' GGUF loader reads of each model type).
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from circuitscope.errors import UnsupportedModelError
from circuitscope.models.base import Adapter

__all__ = ["Adapter", "adapter_for", "all_adapters", "families"]


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


def families() -> dict[str, tuple[str, ...]]:
    """Every family name and the ``config.model_type`` values its adapters cover, sorted."""
    grouped: dict[str, set[str]] = {}
    for adapter in all_adapters():
        grouped.setdefault(adapter.family, set()).update(adapter.model_types)
    return {family: tuple(sorted(types)) for family, types in sorted(grouped.items())}


def adapter_for(model_type: str) -> Adapter:
    """The adapter covering a Hugging Face ``config.model_type``.

    An unknown ``model_type`` raises :class:`UnsupportedModelError` listing the supported families
    and how to add one (``docs/adapters.md``).
    """
    for adapter in all_adapters():
        if model_type in adapter.model_types:
            return adapter
    listing = "; ".join(f"{family} ({', '.join(types)})" for family, types in families().items())
    raise UnsupportedModelError(
        f"no circuitscope adapter for model_type {model_type!r}. Supported families (model types): {listing}. "
        "To add a family, write one adapter file in src/circuitscope/models/ and a tiny recipe in "
        "tests/families/: docs/adapters.md shows a complete adapter file and the steps, and "
        "docs/models.md lists what each supported family can do."
    )
