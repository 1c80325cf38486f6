"""Parsed word vectors cached once as binary files under ``$CIRCUITSCOPE_HOME/embeddings/<name>``.

A cache entry is three files: ``vectors.npy`` (float32, C order, memory-mapped copy-on-write on
load, so a load reads no more than the pages a caller touches), ``words.txt`` (UTF-8, one word a
line, in row order) and ``header.json`` (written last: the commit point). The header carries the
format version, the matrix shape, the size, mtime and SHA-256 of every source file it was parsed
from, and the size and mtime of the two data files.

A load trusts the entry only when the header is readable and of this version, the two data files
have the recorded size and mtime (a truncated, rewritten or foreign file does not) and their
contents match the header (the ``.npy`` header's dtype and shape, the number of words). The
sources are checked cheaply: a different size is stale; a different mtime with the same size
costs one SHA-256 of the source (about 0.13 s for GloVe's 80 MB), and the entry stays valid if it
is the recorded one. Hashing every source on every load would cost that 0.13 s each time, for a
file circuitscope extracted itself and nothing else rewrites; size + mtime catch every rewrite.

Anything else is rebuilt, never trusted: under an inter-process lock (``filelock``), each file
written under a temporary name of this process and renamed into place (:func:`atomic_write`), the
header last, so concurrent builders and readers never see half an entry. A cache folder that
cannot be written (read-only home) is not an error: the vectors are parsed from the sources, with
one :class:`EmbeddingsCacheWarning`. No pickle is read or written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from filelock import FileLock

from circuitscope.core.files import atomic_write, atomic_write_json, atomic_write_text
from circuitscope.core.loading import cache_home

__all__ = [
    "CACHE_FORMAT",
    "CACHE_FORMAT_VERSION",
    "CachedVectors",
    "EmbeddingsCacheWarning",
    "Origin",
    "cached_vectors",
    "embeddings_cache_folder",
]

CACHE_FORMAT = "circuitscope-embeddings-cache"
CACHE_FORMAT_VERSION = 1
"""Bumped whenever the layout changes: an entry of another version is rebuilt."""

Origin = Literal["cache", "built", "parsed"]
"""Where vectors came from: an existing cache entry, a cache entry just built, or the sources (no cache)."""

Parser = Callable[[], tuple[np.ndarray, list[str]]]
"""Reads the sources: a float32 ``[vocab, d]`` matrix and one word per row."""

_VECTORS, _WORDS, _HEADER, _LOCK = "vectors.npy", "words.txt", "header.json", ".lock"


class EmbeddingsCacheWarning(UserWarning):
    """The embeddings cache could not be written: the vectors were parsed from their sources instead."""


class _StaleError(Exception):
    """The cache entry cannot be used as it is (the message says why)."""


@dataclass(frozen=True)
class CachedVectors:
    """A word-vector matrix and its words, with where they came from."""

    vectors: np.ndarray
    """float32 ``[vocab, d]``, C order; a copy-on-write memory map when read from the cache."""
    words: list[str]
    """The word of each row."""
    origin: Origin
    """``cache``, ``built`` (this call wrote the entry) or ``parsed`` (the cache folder was not writable)."""


def embeddings_cache_folder(name: str) -> Path:
    """``$CIRCUITSCOPE_HOME/embeddings/<name>``: the cache entry of the vectors called ``name``."""
    return cache_home() / "embeddings" / name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _source_record(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _sha256(path)}


def _stat_record(st: os.stat_result) -> dict[str, int]:
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _read_header(folder: Path) -> dict[str, Any]:
    try:
        header = json.loads((folder / _HEADER).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise _StaleError("no cache yet") from err
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise _StaleError(f"unreadable header ({err})") from err
    if not isinstance(header, dict) or header.get("format") != CACHE_FORMAT:
        raise _StaleError("not a circuitscope embeddings cache header")
    if header.get("version") != CACHE_FORMAT_VERSION:
        raise _StaleError(f"format version {header.get('version')!r}, not {CACHE_FORMAT_VERSION}")
    return header


def _changed_sources(header: dict[str, Any], sources: Sequence[Path]) -> list[int] | None:
    """Indices of the sources whose mtime changed (same size): their hash decides. None if the entry is stale."""
    recorded = header.get("sources")
    if not isinstance(recorded, list) or [r.get("name") for r in recorded if isinstance(r, dict)] != [
        p.name for p in sources
    ]:
        return None
    touched = []
    for i, (record, path) in enumerate(zip(recorded, sources, strict=True)):
        try:
            st = path.stat()
        except OSError:  # a missing source: the parser says what is wrong
            return None
        if st.st_size != record.get("size"):
            return None
        if st.st_mtime_ns != record.get("mtime_ns"):
            touched.append(i)
    return touched


def _check_file(st: os.stat_result, header: dict[str, Any], key: str) -> None:
    if _stat_record(st) != header.get("files", {}).get(key):
        raise _StaleError(f"{key} file changed since the cache was written (size or mtime)")


def _read_entry(folder: Path, header: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """The memory-mapped vectors and the words, each checked against the header on the open file."""
    shape = header.get("shape")
    if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise _StaleError("header without a valid shape")
    try:
        with open(folder / _VECTORS, "rb") as handle:
            _check_file(os.fstat(handle.fileno()), header, "vectors")
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                npy_shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                npy_shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            if list(npy_shape) != shape or fortran or dtype != np.dtype("<f4"):
                raise _StaleError(f"vectors file holds {dtype} {npy_shape}, not float32 {tuple(shape)} in C order")
            offset = handle.tell()
            if os.fstat(handle.fileno()).st_size != offset + shape[0] * shape[1] * 4:
                raise _StaleError("vectors file has the wrong length")
            vectors = np.memmap(handle, dtype=np.float32, mode="c", offset=offset, shape=(shape[0], shape[1]))
        with open(folder / _WORDS, "rb") as handle:
            _check_file(os.fstat(handle.fileno()), header, "words")
            text = handle.read().decode("utf-8")
    except FileNotFoundError as err:
        raise _StaleError(f"{err.filename} is missing") from err
    except (OSError, ValueError) as err:  # a damaged .npy header, undecodable words
        raise _StaleError(f"unreadable data file ({err})") from err
    words = text.split("\n") if shape[0] else []
    if len(words) != shape[0]:
        raise _StaleError(f"{len(words)} words for {shape[0]} vectors")
    return vectors, words


def _refresh_mtimes(folder: Path, header: dict[str, Any], sources: Sequence[Path], touched: list[int]) -> None:
    """Record the new mtimes of sources whose hash matched, so the next load need not hash them again.

    Only if the lock is free at once and the header is still the one checked; anything else skips it
    (the next load hashes again, nothing worse).
    """
    try:
        with FileLock(str(folder / _LOCK)).acquire(timeout=0):
            if _read_header(folder) != header:
                return
            updated = json.loads(json.dumps(header))
            for i in touched:
                updated["sources"][i]["mtime_ns"] = sources[i].stat().st_mtime_ns
            atomic_write_json(folder / _HEADER, updated, indent=1)
    except (OSError, _StaleError):  # busy (filelock's Timeout is an OSError), read-only, or rebuilt meanwhile
        pass


def _load_entry(folder: Path, sources: Sequence[Path], locked: bool) -> tuple[np.ndarray, list[str]]:
    """The entry if it is current; raises :class:`_StaleError` otherwise.

    A source whose mtime changed but whose size did not is hashed; if the hash is the recorded one the
    entry is current and the header takes the new mtime (``locked``: the caller holds the lock).
    """
    header = _read_header(folder)
    touched = _changed_sources(header, sources)
    if touched is None:
        raise _StaleError("a source file changed (size, or names)")
    for i in touched:
        if _sha256(sources[i]) != header["sources"][i].get("sha256"):
            raise _StaleError(f"{sources[i].name} changed (its SHA-256)")
    vectors, words = _read_entry(folder, header)
    if touched and locked:
        for i in touched:
            header["sources"][i]["mtime_ns"] = sources[i].stat().st_mtime_ns
        with contextlib.suppress(OSError):  # a header that keeps the old mtime only costs a hash next time
            atomic_write_json(folder / _HEADER, header, indent=1)
    elif touched:
        _refresh_mtimes(folder, header, sources, touched)
    return vectors, words


def _checked(vectors: np.ndarray, words: list[str]) -> tuple[np.ndarray, list[str]]:
    if vectors.ndim != 2 or vectors.shape[0] != len(words):
        raise ValueError(f"the parser gave {vectors.shape} vectors for {len(words)} words")
    bad = next((w for w in words if "\n" in w), None)
    if bad is not None:
        raise ValueError(f"word {bad!r} holds a newline; the cache stores one word a line")
    return np.ascontiguousarray(vectors, dtype=np.float32), words


def _write(folder: Path, sources: Sequence[Path], vectors: np.ndarray, words: list[str]) -> None:
    """Write the entry (the caller holds the lock): the data files first, the header last."""
    (folder / _HEADER).unlink(missing_ok=True)  # a reader never pairs the old header with new data files
    records = [_source_record(p) for p in sources]

    def write_vectors(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            np.lib.format.write_array(handle, vectors, allow_pickle=False)

    atomic_write(folder / _VECTORS, write_vectors)
    atomic_write_text(folder / _WORDS, "\n".join(words))
    header = {
        "format": CACHE_FORMAT,
        "version": CACHE_FORMAT_VERSION,
        "shape": list(vectors.shape),
        "dtype": "float32",
        "sources": records,
        "files": {
            "vectors": _stat_record((folder / _VECTORS).stat()),
            "words": _stat_record((folder / _WORDS).stat()),
        },
    }
    atomic_write_json(folder / _HEADER, header, indent=1)


def _unwritable(name: str, folder: Path, err: OSError) -> None:
    warnings.warn(
        EmbeddingsCacheWarning(
            f"cannot write the {name} cache in {folder} ({type(err).__name__}: {err}); parsing the sources "
            "on every load instead (make the folder writable, or set CIRCUITSCOPE_HOME to one)"
        ),
        stacklevel=3,
    )


def cached_vectors(name: str, sources: Sequence[Path], parse: Parser, *, folder: Path | None = None) -> CachedVectors:
    """The vectors ``parse()`` reads from ``sources``, from the cache entry ``folder`` if it is current.

    ``folder`` defaults to :func:`embeddings_cache_folder` of ``name``. A missing, stale or damaged
    entry is rebuilt (once across processes: the others wait for the lock, then read it); if the
    folder cannot be written, the sources are parsed and an :class:`EmbeddingsCacheWarning` says so.
    """
    folder = embeddings_cache_folder(name) if folder is None else folder
    try:
        vectors, words = _load_entry(folder, sources, locked=False)
        return CachedVectors(vectors, words, "cache")
    except _StaleError:
        pass
    lock = FileLock(str(folder / _LOCK))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError as err:
        _unwritable(name, folder, err)
        return CachedVectors(*_checked(*parse()), "parsed")
    try:
        try:
            vectors, words = _load_entry(folder, sources, locked=True)  # built by another process meanwhile
            return CachedVectors(vectors, words, "cache")
        except _StaleError:
            pass
        vectors, words = _checked(*parse())
        try:
            _write(folder, sources, vectors, words)
        except OSError as err:
            _unwritable(name, folder, err)
            return CachedVectors(vectors, words, "parsed")
        return CachedVectors(vectors, words, "built")
    finally:
        lock.release()
