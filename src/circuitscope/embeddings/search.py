"""The exact best answer of many analogy questions at once: block upper bounds, then exact scores where they can win.

For a question ``(a, b, c)`` and a unit row ``x`` the score is

- 3CosAdd: ``cos(x, b) + cos(x, c) - cos(x, a)`` (it ranks rows exactly as gensim's cosine with
  the normalised mean of ``b``, ``c`` and ``-a`` does);
- 3CosMul: ``cos'(x, b) cos'(x, c) / (cos'(x, a) + 1e-3)`` with ``cos' = (cos + 1) / 2``.

Both split as ``D_ab(x) (+ or *) E_c(x)``. The questions of a benchmark share their ``(a, b)``
pairs and their ``c`` words (the Google set: 19,544 questions, about 550 pairs and 470 ``c``
words), so ``D`` and ``E`` over the whole vocabulary cost about a twentieth of scoring every
question against every row. Over a block of consecutive rows, ``max D + max E`` (``max D * max E``
for 3CosMul, whose factors are non-negative) bounds every score in the block. Each question is
first scored exactly on its 16 most promising blocks; then only the blocks whose bound reaches the
best of those scores are scored exactly (2.5 % of them for GloVe 6B 50d). A pruned block cannot hold a
better row, so the answer is exact, not approximate.

Rows are first grouped by direction (the signs of 10 fixed random projections) within frequency
bands (the last half of the rows, the quarter before it, ...), which tightens the block bounds
and keeps the frequent words, where the answers mostly are, in blocks of their own. Work is
batched: the bounds are matrix products over vocabulary chunks small enough to stay in cache,
and each step's exact scores are one small matrix product per block for all the questions that
block can still win; there is no loop over questions. It runs on one torch thread
(:func:`search_threads`: the free cores, one on a busy machine).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace

import torch
from jaxtyping import Float, Int

from circuitscope.embeddings.analogy import COSMUL_EPS, METHODS, Method
from circuitscope.engine.batching import batch_slices

__all__ = ["SearchSettings", "analogy_scores", "best_rows", "search_threads"]


def search_threads() -> int:
    """torch threads for :func:`best_rows`: the cores no other process is using, at least 1, at most torch's setting.

    The free cores are the usable cores less the 1-minute load average, rounded up: a core counts as free
    unless it is busy for the whole minute. The search's exact step is thousands of small matrix
    products, and on a thread whose core another process holds each one waits for it: on the shared
    2-core machine the Google set took 62-93 s on 2 threads against 4-5 s on one (load 3-4), while at
    load 0.7-0.8 (partly the benchmark's own runs) 2 threads were 1.4-1.6x faster than one
    (benchmarks/RESULTS_analogies.md). A busy machine gets one thread, an idle one all of torch's.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:  # no load average on this platform: assume busy
        busy = float(cores)
    return max(1, min(torch.get_num_threads(), math.ceil(cores - busy)))


_NEG = -torch.inf


def _combine(cos_a: torch.Tensor, cos_b: torch.Tensor, cos_c: torch.Tensor, method: Method) -> torch.Tensor:
    if method == "3cosadd":
        return cos_b + cos_c - cos_a
    return ((cos_b + 1) / 2) * ((cos_c + 1) / 2) / ((cos_a + 1) / 2 + COSMUL_EPS)


def analogy_scores(
    unit: Float[torch.Tensor, "vocab d"],
    abc: Int[torch.Tensor, "q 3"],
    rows: Int[torch.Tensor, "q k"],
    method: Method = "3cosadd",
) -> Float[torch.Tensor, "q k"]:
    """Exact scores of question ``q`` (rows ``a, b, c`` of ``unit``) at ``rows[q]``; ``-inf`` where ``rows`` is -1."""
    if rows.numel() == 0:
        return torch.empty(rows.shape, dtype=unit.dtype)
    x = unit[rows.clamp_min(0)]  # [q, k, d]
    cos = torch.einsum("qkd,qjd->qjk", x, unit[abc])  # [q, 3, k]
    scores = _combine(cos[:, 0], cos[:, 1], cos[:, 2], method)
    return scores.masked_fill(rows < 0, _NEG)


def _block_maxima(
    unit: torch.Tensor,
    anchors: torch.Tensor,
    pairs: torch.Tensor,
    cs: torch.Tensor,
    method: Method,
    width: int,
    chunk_blocks: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per block of ``width`` rows: the max of ``D_ab`` (a row per pair) and of ``E_c`` (a row per ``c``).

    For 3CosAdd ``D_ab(x) = x . (u_b - u_a)``: one product with the pair differences and the ``c`` rows,
    over chunks of ``chunk_blocks`` blocks small enough that the product stays in cache for the maxima.
    """
    n_vocab = unit.shape[0]
    n_blocks = -(-n_vocab // width)
    n_pairs = pairs.shape[0]
    lhs = torch.cat([anchors[pairs[:, 1]] - anchors[pairs[:, 0]], anchors[cs]])  # 3CosAdd's [pairs + cs, d]
    maxima = torch.empty(n_pairs + cs.shape[0], n_blocks, dtype=unit.dtype)
    for part in batch_slices(n_vocab, width * chunk_blocks):
        start, stop = part.start, part.stop
        if method == "3cosadd":
            de = lhs @ unit[start:stop].T  # [pairs + cs, chunk]
        else:
            cos = (anchors @ unit[start:stop].T).add_(1).mul_(0.5)  # [distinct words, chunk]
            de = torch.cat([cos[pairs[:, 1]].div_(cos[pairs[:, 0]].add_(COSMUL_EPS)), cos[cs]])
        pad = -(stop - start) % width
        if pad:
            de = torch.nn.functional.pad(de, (0, pad), value=_NEG)
        maxima[:, start // width : -(-stop // width)] = de.view(de.shape[0], -1, width).amax(-1)
    return maxima[:n_pairs], maxima[n_pairs:]


class _Scorer:
    """Exact scores of questions on blocks of rows, the question's masked rows barred."""

    def __init__(self, unit: torch.Tensor, abc: torch.Tensor, masked: torch.Tensor, method: Method, width: int) -> None:
        self.unit, self.abc, self.masked, self.width = unit, abc, masked, width
        self.method: Method = method
        if method == "3cosadd":  # one product per block: u_x . (u_b + u_c - u_a)
            self.query = unit[abc[:, 1]] + unit[abc[:, 2]] - unit[abc[:, 0]]
        self.masked_blocks = torch.where(masked >= 0, masked // width, -1)

    def _scores(self, qs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        if self.method == "3cosadd":
            return self.query[qs] @ rows.T
        cos = (self.unit[self.abc[qs]].reshape(-1, rows.shape[1]) @ rows.T).view(qs.shape[0], 3, -1)
        return _combine(cos[:, 0], cos[:, 1], cos[:, 2], self.method)

    def _mask(self, scores: torch.Tensor, qs: torch.Tensor, lo: int) -> None:
        local = self.masked[qs] - lo
        r, c = ((local >= 0) & (local < scores.shape[1])).nonzero(as_tuple=True)
        scores[r, local[r, c]] = _NEG

    def block_max(self, q_idx: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
        """The best unmasked score of each ``(question, block)`` pair (``-inf`` if every row is masked)."""
        return self._block_best(q_idx, blocks, arg=False)[0]

    def block_argmax(self, q_idx: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
        """The row of the best unmasked score of each ``(question, block)`` pair (the first if tied)."""
        return self._block_best(q_idx, blocks, arg=True)[1]

    def _block_best(self, q_idx: torch.Tensor, blocks: torch.Tensor, arg: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (and rows) of the pairs: one matrix product per distinct block, for all its questions."""
        n = q_idx.shape[0]
        values = torch.empty(n, dtype=self.unit.dtype)
        rows = torch.empty(n, dtype=torch.long)
        if n == 0:
            return values, rows
        order = torch.argsort(blocks, stable=True)
        q_sorted, b_sorted = q_idx[order], blocks[order]
        out = torch.empty_like(values)
        out_rows = torch.empty(n, dtype=torch.long)
        ids, counts = torch.unique_consecutive(b_sorted, return_counts=True)
        # the pairs holding one of the question's masked rows are few: the blocks of a, b, c (and variants)
        needs_mask = (self.masked_blocks[q_sorted] == b_sorted[:, None]).any(1)
        group = torch.repeat_interleave(torch.arange(ids.shape[0]), counts)
        any_mask = torch.zeros(ids.shape[0], dtype=torch.bool).index_fill_(0, group[needs_mask], True)
        width, n_vocab = self.width, self.unit.shape[0]
        start = 0
        for block, count, masking in zip(ids.tolist(), counts.tolist(), any_mask.tolist(), strict=True):
            stop = start + count
            qs = q_sorted[start:stop]
            lo = block * width
            scores = self._scores(qs, self.unit[lo : min(lo + width, n_vocab)])  # [n, width]
            if masking:
                self._mask(scores, qs, lo)
            if arg:
                torch.max(scores, 1, out=(out[start:stop], out_rows[start:stop]))
                out_rows[start:stop] += lo
            else:
                torch.amax(scores, 1, out=out[start:stop])
            start = stop
        values[order] = out
        rows[order] = out_rows
        return values, rows


def _direction_order(unit: torch.Tensor, bits: int, bands: int = 0) -> torch.Tensor:
    """A row order grouping rows by the signs of their projections on ``bits`` fixed random directions.

    With ``bands``, first by position band (the last half of the rows, the quarter before it, ...,
    ``bands`` halvings, the rest first), keeping frequent rows together when the rows are in frequency
    order: the answers are mostly frequent words, so their blocks are the ones scored, and the blocks
    of rare words fall below the bar. On GloVe this needs 26 % fewer blocks scored than the signs alone.
    """
    n = unit.shape[0]
    planes = torch.randn(unit.shape[1], bits, generator=torch.Generator().manual_seed(0), dtype=unit.dtype)
    key = (((unit @ planes) > 0).long() << torch.arange(bits)).sum(1)
    edges = torch.tensor(sorted({n >> k for k in range(1, bands + 1)}), dtype=torch.long)
    band = torch.bucketize(torch.arange(n), edges, right=True)
    return torch.argsort(band * (1 << bits) + key, stable=True)


def _scored_blocks(
    scorer: _Scorer, first_blocks: int, question_batch: int, chunk_blocks: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (question, block) pair that can hold a question's best row, with its exact best score.

    First each question's ``first_blocks`` most promising blocks by bound (the bar), then every
    other block whose bound reaches that bar. The bounds of ``question_batch`` questions are held
    at once (twice: for the first blocks, then against the bar), and each step's exact scores are
    one :meth:`_Scorer.block_max` over all the questions, so each block's rows are scored once a step.
    """
    unit, abc, method, width = scorer.unit, scorer.abc, scorer.method, scorer.width
    n_q = abc.shape[0]
    words, slots = torch.unique(abc, return_inverse=True)
    pairs, pair_of = torch.unique(slots[:, :2], dim=0, return_inverse=True)
    cs, c_of = torch.unique(slots[:, 2], return_inverse=True)
    d_max, e_max = _block_maxima(unit, unit[words], pairs, cs, method, width, chunk_blocks)
    n_first = min(first_blocks, d_max.shape[1])

    def bounds(rows: slice) -> torch.Tensor:  # [questions, blocks]
        p, c = pair_of[rows], c_of[rows]
        return d_max[p].add_(e_max[c]) if method == "3cosadd" else d_max[p].mul_(e_max[c])

    # 1. each question on its most promising blocks: the bar
    first = torch.cat([bounds(rows).topk(n_first, 1).indices for rows in batch_slices(n_q, question_batch)])
    q1, b1 = torch.arange(n_q).repeat_interleave(n_first), first.reshape(-1)
    v1 = scorer.block_max(q1, b1)
    bar = torch.full((n_q,), _NEG, dtype=unit.dtype).scatter_reduce_(0, q1, v1, "amax")
    reach = (bar - 1e-4 * (1 + bar.abs()))[:, None]  # a margin covers float rounding
    # 2. every other block whose bound reaches the bar
    rest_q, rest_b = [], []
    for rows in batch_slices(n_q, question_batch):
        ub = bounds(rows).scatter_(1, first[rows], _NEG)
        q, b = (ub >= reach[rows]).nonzero(as_tuple=True)
        rest_q.append(q + rows.start)
        rest_b.append(b)
    q2, b2 = torch.cat(rest_q), torch.cat(rest_b)
    return torch.cat([q1, q2]), torch.cat([b1, b2]), torch.cat([v1, scorer.block_max(q2, b2)])


@dataclass(frozen=True)
class SearchSettings:
    """How :func:`best_rows` orders, blocks and batches the rows: its speed and memory, never its answer."""

    cluster_bits: int = 10
    """Rows are first grouped by the signs of that many fixed random projections, so that a block holds rows
    of similar direction (its bound is tighter); 0 keeps the given order."""
    frequency_bands: int = 6
    """The groups are formed within that many halvings of the given order (the last half, the quarter before
    it, ...), which keeps frequent words together in a frequency-ordered vocabulary; 0 groups all rows at once."""
    block: int = 64
    """Rows per block (consecutive in that order)."""
    chunk_blocks: int = 4
    """Blocks whose bounds are computed in one matrix product."""
    question_batch: int = 1024
    """Questions whose bounds are held at once."""
    first_blocks: int = 16
    """How many of each question's most promising blocks are scored first, to set the bar the other blocks'
    bounds must reach."""

    def __post_init__(self) -> None:
        if min(self.block, self.chunk_blocks, self.question_batch, self.first_blocks) < 1:
            raise ValueError("block, chunk_blocks, question_batch and first_blocks must be positive")
        if min(self.cluster_bits, self.frequency_bands) < 0:
            raise ValueError("cluster_bits and frequency_bands must be 0 or more")


def best_rows(
    unit: Float[torch.Tensor, "vocab d"],
    abc: Int[torch.Tensor, "q 3"],
    masked: Int[torch.Tensor, "q m"],
    method: Method = "3cosadd",
    *,
    settings: SearchSettings | None = None,
    threads: int | None = None,
) -> tuple[Float[torch.Tensor, " q"], Int[torch.Tensor, " q"]]:
    """Each question's best-scoring row of ``unit`` among the rows not listed in ``masked[q]`` (-1 pads).

    ``unit`` has unit-length rows; ``abc[q]`` are the rows of ``a``, ``b`` and ``c``. Returns the
    best score and its row, ``-inf`` and -1 where every row is masked. Exactly the argmax of
    :func:`analogy_scores` over all unmasked rows (exactly equal scores are broken by a fixed
    row order), whatever the ``settings`` (None: the defaults of :class:`SearchSettings`). ``threads``:
    torch threads while searching (restored after); None: :func:`search_threads` (the free cores).
    """
    if method not in METHODS:
        raise ValueError(f"method must be '3cosadd' or '3cosmul', got {method!r}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be positive (or None for the free cores), got {threads}")
    knobs = settings or SearchSettings()
    previous = torch.get_num_threads()
    threads = search_threads() if threads is None else threads
    try:
        if threads != previous:
            torch.set_num_threads(threads)
        return _best_rows(unit, abc, masked, method, knobs)
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def _best_rows(
    unit: torch.Tensor, abc: torch.Tensor, masked: torch.Tensor, method: Method, knobs: SearchSettings
) -> tuple[torch.Tensor, torch.Tensor]:
    n_vocab, n_q = unit.shape[0], abc.shape[0]
    best_v = torch.full((n_q,), _NEG, dtype=unit.dtype)
    best_i = torch.full((n_q,), -1, dtype=torch.long)
    if n_q == 0 or n_vocab == 0:
        return best_v, best_i
    width = max(1, min(knobs.block, n_vocab))
    if n_vocab > width and knobs.cluster_bits > 0:  # neighbouring rows in one block: tighter bounds, fewer to score
        perm = _direction_order(unit, knobs.cluster_bits, knobs.frequency_bands)
        where = torch.empty_like(perm)
        where[perm] = torch.arange(n_vocab)
        barred = torch.where(masked >= 0, where[masked.clamp_min(0)], -1)
        v, i = _best_rows(unit[perm], where[abc], barred, method, replace(knobs, cluster_bits=0))
        return v, torch.where(i >= 0, perm[i.clamp_min(0)], -1)
    scorer = _Scorer(unit, abc, masked, method, width)
    q_all, b_all, v_all = _scored_blocks(scorer, knobs.first_blocks, knobs.question_batch, knobs.chunk_blocks)
    n_blocks = -(-n_vocab // width)
    best_v.scatter_reduce_(0, q_all, v_all, "amax")
    # 3. the row: in the lowest block reaching the best score
    won = (v_all == best_v[q_all]) & (v_all > _NEG)
    win_block = torch.full((n_q,), n_blocks, dtype=torch.long).scatter_reduce_(0, q_all[won], b_all[won], "amin")
    found = (win_block < n_blocks).nonzero()[:, 0]
    best_i[found] = scorer.block_argmax(found, win_block[found])
    return best_v, best_i
