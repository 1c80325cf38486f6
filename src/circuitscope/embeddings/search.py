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
first scored exactly on its most promising block; then only the blocks whose bound reaches that
score are scored exactly (about 3 % of them for GloVe 6B 50d). A pruned block cannot hold a
better row, so the answer is exact, not approximate.

Work is batched: the bounds are matrix products over vocabulary chunks, and the exact scores are
one small matrix product per block for all the questions that block can still win.
"""

from __future__ import annotations

from typing import Literal

import torch
from jaxtyping import Float, Int

from circuitscope.embeddings.analogy import COSMUL_EPS

__all__ = ["analogy_scores", "best_rows"]

Method = Literal["3cosadd", "3cosmul"]
_NEG = -torch.inf


def _combine(
    cos_a: torch.Tensor, cos_b: torch.Tensor, cos_c: torch.Tensor, method: Method
) -> torch.Tensor:
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
    """``max`` over each block of ``D_ab`` (one row per pair) and of ``E_c`` (one row per ``c``)."""
    n_vocab = unit.shape[0]
    n_blocks = -(-n_vocab // width)
    d_max = torch.empty(pairs.shape[0], n_blocks, dtype=unit.dtype)
    e_max = torch.empty(cs.shape[0], n_blocks, dtype=unit.dtype)
    step = width * chunk_blocks
    for start in range(0, n_vocab, step):
        stop = min(start + step, n_vocab)
        cos = anchors @ unit[start:stop].T  # [distinct words, chunk]
        if method == "3cosmul":
            cos.add_(1).mul_(0.5)
            d = cos[pairs[:, 1]] / (cos[pairs[:, 0]] + COSMUL_EPS)
        else:
            d = cos[pairs[:, 1]] - cos[pairs[:, 0]]
        e = cos[cs]
        pad = -(stop - start) % width
        if pad:
            d = torch.nn.functional.pad(d, (0, pad), value=_NEG)
            e = torch.nn.functional.pad(e, (0, pad), value=_NEG)
        b0, b1 = start // width, -(-stop // width)
        d_max[:, b0:b1] = d.view(d.shape[0], -1, width).amax(-1)
        e_max[:, b0:b1] = e.view(e.shape[0], -1, width).amax(-1)
    return d_max, e_max


class _Scorer:
    """Exact block scores for many questions, keeping each question's best unmasked row."""

    def __init__(
        self, unit: torch.Tensor, abc: torch.Tensor, masked: torch.Tensor, method: Method, width: int
    ) -> None:
        self.unit, self.abc, self.masked, self.method, self.width = unit, abc, masked, method, width
        n_q = abc.shape[0]
        self.best_v = torch.full((n_q,), _NEG, dtype=unit.dtype)
        self.best_i = torch.full((n_q,), -1, dtype=torch.long)
        if method == "3cosadd":  # one product per block: u_x . (u_b + u_c - u_a)
            self.query = unit[abc[:, 1]] + unit[abc[:, 2]] - unit[abc[:, 0]]

    def _block_scores(self, qs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        if self.method == "3cosadd":
            return self.query[qs] @ rows.T
        cos = (self.unit[self.abc[qs]].reshape(-1, rows.shape[1]) @ rows.T).view(qs.shape[0], 3, -1)
        return _combine(cos[:, 0], cos[:, 1], cos[:, 2], self.method)

    def score(self, q_idx: torch.Tensor, blocks: torch.Tensor) -> None:
        """Score the ``(question, block)`` pairs exactly (each question at most once per block)."""
        if q_idx.numel() == 0:
            return
        order = torch.argsort(blocks, stable=True)
        q_idx, blocks = q_idx[order], blocks[order]
        ids, counts = torch.unique_consecutive(blocks, return_counts=True)
        width, n_vocab = self.width, self.unit.shape[0]
        start = 0
        for block, count in zip(ids.tolist(), counts.tolist(), strict=True):
            qs = q_idx[start : start + count]
            start += count
            lo = block * width
            hi = min(lo + width, n_vocab)
            scores = self._block_scores(qs, self.unit[lo:hi])  # [n, hi - lo]
            local = self.masked[qs] - lo
            hit = (local >= 0) & (local < hi - lo)
            if bool(hit.any()):
                r, c = hit.nonzero(as_tuple=True)
                scores[r, local[r, c]] = _NEG
            value, arg = scores.max(1)
            better = value > self.best_v[qs]
            won = qs[better]
            self.best_v[won] = value[better]
            self.best_i[won] = arg[better] + lo


def best_rows(
    unit: Float[torch.Tensor, "vocab d"],
    abc: Int[torch.Tensor, "q 3"],
    masked: Int[torch.Tensor, "q m"],
    method: Method = "3cosadd",
    *,
    block: int = 64,
    chunk_blocks: int = 128,
    question_batch: int = 2048,
) -> tuple[Float[torch.Tensor, " q"], Int[torch.Tensor, " q"]]:
    """Each question's best-scoring row of ``unit`` among the rows not listed in ``masked[q]`` (-1 pads).

    ``unit`` has unit-length rows; ``abc[q]`` are the rows of ``a``, ``b`` and ``c``. Returns the
    best score and its row, ``-inf`` and -1 where every row is masked. Exactly the argmax of
    :func:`analogy_scores` over all unmasked rows (up to float rounding between equal scores).
    """
    if method not in ("3cosadd", "3cosmul"):
        raise ValueError(f"method must be '3cosadd' or '3cosmul', got {method!r}")
    if block < 1 or chunk_blocks < 1 or question_batch < 1:
        raise ValueError("block, chunk_blocks and question_batch must be positive")
    n_vocab = unit.shape[0]
    width = max(1, min(block, n_vocab))
    scorer = _Scorer(unit, abc, masked, method, width)
    n_q = abc.shape[0]
    if n_q == 0 or n_vocab == 0:
        return scorer.best_v, scorer.best_i
    words, slots = torch.unique(abc, return_inverse=True)
    pairs, pair_of = torch.unique(slots[:, :2], dim=0, return_inverse=True)
    cs, c_of = torch.unique(slots[:, 2], return_inverse=True)
    d_max, e_max = _block_maxima(unit, unit[words], pairs, cs, method, width, chunk_blocks)

    def bounds(qs: slice) -> torch.Tensor:  # [questions, blocks]
        d, e = d_max[pair_of[qs]], e_max[c_of[qs]]
        return d.add_(e) if method == "3cosadd" else d.mul_(e)

    # 1. each question on its most promising block: a first, usually final, best score
    first = torch.cat([bounds(slice(s, s + question_batch)).argmax(1) for s in range(0, n_q, question_batch)])
    scorer.score(torch.arange(n_q), first)
    # 2. every other block whose bound reaches that score (a margin covers float rounding)
    q_parts, b_parts = [], []
    for s in range(0, n_q, question_batch):
        ub = bounds(slice(s, s + question_batch))
        best = scorer.best_v[s : s + question_batch]
        ub[torch.arange(ub.shape[0]), first[s : s + question_batch]] = _NEG
        q, b = (ub >= (best - 1e-4 * (1 + best.abs()))[:, None]).nonzero(as_tuple=True)
        q_parts.append(q + s)
        b_parts.append(b)
    scorer.score(torch.cat(q_parts), torch.cat(b_parts))
    return scorer.best_v, scorer.best_i
