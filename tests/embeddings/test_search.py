"""The block-bounded search equals brute force; the benchmark's case-variant rule equals gensim's loop."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Literal

import pytest
import torch

from circuitscope.embeddings import Embeddings, evaluate_analogies, parse_analogy_file
from circuitscope.embeddings.search import SearchSettings, analogy_scores, best_rows, search_threads


def _brute(
    unit: torch.Tensor, abc: torch.Tensor, masked: torch.Tensor, method: Literal["3cosadd", "3cosmul"]
) -> torch.Tensor:
    """One question at a time: every row's score, masked rows barred, the argmax."""
    out = []
    for q in range(abc.shape[0]):
        rows = torch.arange(unit.shape[0])[None]
        s = analogy_scores(unit, abc[q : q + 1], rows, method)[0]
        bar = masked[q][masked[q] >= 0]
        s[bar] = -torch.inf
        out.append(int(s.argmax()) if bool(torch.isfinite(s).any()) else -1)
    return torch.tensor(out)


@pytest.mark.parametrize("method", ["3cosadd", "3cosmul"])
@pytest.mark.parametrize(
    ("block", "bits", "first", "bands"), [(4, 0, 1, 0), (7, 3, 2, 0), (7, 3, 2, 6), (16, 8, 16, 3), (1000, 8, 1, 6)]
)
def test_best_rows_equals_brute_force(
    method: Literal["3cosadd", "3cosmul"], block: int, bits: int, first: int, bands: int
) -> None:
    g = torch.Generator().manual_seed(block + bits)
    unit = torch.nn.functional.normalize(torch.randn(203, 8, generator=g), dim=1)
    # questions sharing (a, b) pairs and c words, as in the Google set
    pairs = torch.randint(0, 203, (12, 2), generator=g)
    cs = torch.randint(0, 203, (30,), generator=g)
    abc = torch.cat(
        [pairs[torch.randint(0, 12, (150,), generator=g)], cs[torch.randint(0, 30, (150, 1), generator=g)]], 1
    )
    extra = torch.randint(-1, 203, (150, 4), generator=g)  # more barred rows, -1 pads
    masked = torch.cat([abc, extra], 1)
    settings = SearchSettings(
        block=block, cluster_bits=bits, first_blocks=first, question_batch=37, chunk_blocks=3, frequency_bands=bands
    )
    value, row = best_rows(unit, abc, masked, method, settings=settings)
    expected = _brute(unit, abc, masked, method)
    assert torch.equal(row, expected)
    ref = analogy_scores(unit, abc, expected[:, None], method)[:, 0]
    # blocked and batched scores vs one GEMM for the reference: float32 rounding (measured 2.9e-6 on ~13)
    torch.testing.assert_close(value, ref, rtol=1e-5, atol=1e-5)


def test_every_row_barred_gives_minus_one() -> None:
    unit = torch.nn.functional.normalize(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    abc = torch.tensor([[0, 1, 2]])
    value, row = best_rows(unit, abc, abc)
    assert row.tolist() == [-1] and value.tolist() == [-torch.inf]


def _gensim_loop(emb: Embeddings, path: Path) -> list[tuple[int, int, int]]:
    """gensim 4.4's evaluate_word_analogies, literally: most_similar's top 5 (input rows dropped), then the rule."""
    keys, unit = emb.words, emb.normalized().double()
    ok = {k.upper(): i for i, k in reversed(list(enumerate(keys)))}
    sections: list[tuple[int, int, int]] = []
    for line in path.read_text().splitlines():
        if line.startswith(": "):
            sections.append((0, 0, 0))
            continue
        a, b, c, expected = (w.upper() for w in line.split())
        if any(w not in ok for w in (a, b, c, expected)):
            sections[-1] = (sections[-1][0], sections[-1][1], sections[-1][2] + 1)
            continue
        ia, ib, ic = ok[a], ok[b], ok[c]
        mean = unit[ib] + unit[ic] - unit[ia]
        dists = unit @ (mean / mean.norm())
        best = [int(i) for i in torch.argsort(-dists, stable=True)[:8] if int(i) not in (ia, ib, ic)][:5]
        predicted = None
        for i in best:
            predicted = keys[i].upper()
            if predicted not in (a, b, c):
                break
        ok_n, bad, oov = sections[-1]
        sections[-1] = (ok_n + (predicted == expected), bad + (predicted != expected), oov)
    return sections


def test_case_variants_follow_gensims_top5_rule(tmp_path: Path) -> None:
    """Up to 6 case variants of one word, so gensim's top 5 can be all variants (then its answer is the 5th)."""
    g = torch.Generator().manual_seed(3)
    base = ["king", "queen", "man", "woman", "prince", "apple"]
    words = [f"w{i}" for i in range(40)] + base
    for w in ("king", "queen", "man"):
        spellings = ("".join(t) for t in itertools.product(*[(ch, ch.upper()) for ch in w]))
        words += [v for v in spellings if v != w][:6]
    vectors = torch.randn(len(words), 5, generator=g)
    noise = {"king": 0.01, "queen": 0.3, "man": 0.6}  # king's variants crowd the top 5, the others mix in
    for i, w in enumerate(words):
        if w.lower() in noise and w != w.lower():
            vectors[i] = vectors[words.index(w.lower())] + noise[w.lower()] * torch.randn(5, generator=g)
    emb = Embeddings(vectors, words, "variants")
    rng = torch.Generator().manual_seed(4)
    lines = [": family"]
    pool = [*base, "w1", "w2", "w3", "KING", "Queen"]
    for _ in range(200):
        lines.append(" ".join(pool[int(i)] for i in torch.randint(0, len(pool), (4,), generator=rng)))
    path = tmp_path / "q.txt"
    path.write_text("\n".join(lines) + "\n")
    ours = evaluate_analogies(emb, parse_analogy_file(path), batch_size=17)
    assert [(s.correct, s.incorrect, s.oov) for s in ours.sections] == _gensim_loop(emb, path)
    assert ours.sections[0].correct > 0 and ours.sections[0].incorrect > 0


def test_the_search_thread_count_is_restored_and_changes_nothing() -> None:
    g = torch.Generator().manual_seed(5)
    unit = torch.nn.functional.normalize(torch.randn(500, 8, generator=g), dim=1)
    abc = torch.randint(0, 500, (60, 3), generator=g)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        one = best_rows(unit, abc, abc, settings=SearchSettings(block=16), threads=1)
        assert torch.get_num_threads() == 2
        two = best_rows(unit, abc, abc, settings=SearchSettings(block=16), threads=2)
        auto = best_rows(unit, abc, abc, settings=SearchSettings(block=16))  # search_threads()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    for other in (two, auto):
        assert torch.equal(one[1], other[1]) and torch.equal(one[0], other[0])
    assert torch.equal(one[1], _brute(unit, abc, abc, "3cosadd"))
    with pytest.raises(ValueError, match="threads must be positive"):
        best_rows(unit, abc, abc, threads=0)


@pytest.mark.parametrize(
    ("bad", "message"),
    [({"block": 0}, "first_blocks must be positive"), ({"question_batch": -1}, "must be positive"),
     ({"cluster_bits": -1}, "0 or more"), ({"frequency_bands": -2}, "0 or more")],
)  # fmt: skip
def test_search_settings_out_of_range_are_refused(bad: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchSettings(**bad)
    assert SearchSettings(cluster_bits=0, frequency_bands=0).block == 64  # 0 is allowed there: no grouping


@pytest.mark.parametrize(("cores", "load", "torch_threads", "expected"), [
    (2, 0.0, 2, 2), (2, 0.58, 2, 2), (2, 1.0, 2, 1), (2, 1.3, 2, 1), (2, 3.5, 2, 1), (8, 2.2, 8, 6), (8, 0.1, 4, 4),
    (4, 9.0, 4, 1),
])  # fmt: skip
def test_search_threads_are_the_free_cores(
    monkeypatch: pytest.MonkeyPatch, cores: int, load: float, torch_threads: int, expected: int
) -> None:
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)), raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(torch, "get_num_threads", lambda: torch_threads)
    assert search_threads() == expected


def test_duplicate_words_are_refused_with_both_rows() -> None:
    with pytest.raises(ValueError, match=r"'b' appears twice \(rows 1 and 3\)"):
        Embeddings(torch.zeros(4, 2), ["a", "b", "c", "b"], "dup")


@pytest.mark.real
def test_real_glove_cache_equals_the_wheel_files_bit_for_bit() -> None:
    import numpy as np

    from circuitscope.embeddings import load_glove_6b_50d
    from circuitscope.embeddings.matrix import _glove_sources, _parse_glove

    vectors, words = _parse_glove(*_glove_sources())
    glove = load_glove_6b_50d()  # from the cache (built on the first call)
    assert glove.words == words and len(words) == 400_000
    assert np.array_equal(glove.vectors.numpy().view(np.uint32), vectors.view(np.uint32))
