"""Word arithmetic on an embedding matrix: 3CosAdd, 3CosMul, nearest neighbours and projection onto a span."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from jaxtyping import Float

from circuitscope.embeddings.matrix import Embeddings
from circuitscope.errors import CircuitscopeError, ShapeError

# The names this module exports, one per line: the API spelled out on purpose (alike in shape to others').
__all__ = [
    "METHODS",
    "AnalogyResult",
    "ExpressionError",
    "Method",
    "Neighbours",
    "SpanProjection",
    "Term",
    "nearest_neighbours",
    "parse_expression",
    "project_onto_span",
    "solve_analogy",
]

Method = Literal["3cosadd", "3cosmul"]
"""How an analogy is scored: 3CosAdd (cosine with the summed terms) or 3CosMul (Levy & Goldberg 2014)."""
METHODS: tuple[str, ...] = get_args(Method)
COSMUL_EPS = 1e-3
"""Levy & Goldberg (2014)'s epsilon in the 3CosMul denominator (gensim uses the same)."""


class ExpressionError(CircuitscopeError, ValueError):
    """A word-arithmetic expression that does not parse."""


@dataclass(frozen=True)
class Term:
    """One term of an expression: ``coefficient * word``."""

    word: str
    coefficient: float


_TERM = re.compile(r"\s*(?P<sign>[+-])?\s*(?:(?P<coef>\d+(?:\.\d*)?|\.\d+)\s*\*\s*)?(?P<word>[^\s+*]+)")


def parse_expression(expression: str) -> list[Term]:
    """``"king - man + woman"`` -> terms; ``"2*paris - france"`` allows coefficients.

    Operators need not be spaced, but a word may contain ``-`` only inside it (``self-esteem``);
    write ``a - b`` for a difference.
    """
    text = expression.strip()
    if not text:
        raise ExpressionError("empty expression: write words joined by + and -, e.g. 'king - man + woman'")
    terms: list[Term] = []
    pos = 0
    while pos < len(text):
        m = _TERM.match(text, pos)
        if m is None or m.end() == pos:
            raise ExpressionError(
                f"cannot parse {expression!r} at character {pos + 1} ({text[pos:]!r}); "
                "write words joined by + and -, e.g. 'king - man + woman' or '2*paris - france'"
            )
        if terms and m.group("sign") is None:
            raise ExpressionError(
                f"cannot parse {expression!r}: missing + or - before {m.group('word')!r} at character {pos + 1}"
            )
        word = m.group("word")
        if word in ("-", "+") or word.startswith(("-", "+")):
            raise ExpressionError(f"cannot parse {expression!r}: {word!r} is an operator where a word should be")
        coef = float(m.group("coef")) if m.group("coef") else 1.0
        sign = -1.0 if m.group("sign") == "-" else 1.0
        terms.append(Term(word, sign * coef))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return terms


@dataclass(frozen=True)
class AnalogyResult:
    """The best answers to one word-arithmetic query."""

    expression: str
    terms: list[Term]
    method: Method
    exclude_inputs: bool
    """Whether the input words were barred from the answers (gensim's ``most_similar`` bars them)."""
    words: list[str]
    """Best answers, best first."""
    scores: Float[torch.Tensor, " top"]
    """Their scores (cosine for 3CosAdd; the 3CosMul ratio otherwise)."""
    all_scores: Float[torch.Tensor, " vocab"]
    """Score of every word, inputs included (so ranks can be read with or without them)."""
    vocab: list[str]

    def rank(self, word: str, exclude_inputs: bool | None = None) -> int:
        """1-based rank of ``word`` among all words (inputs barred if ``exclude_inputs``, default as solved)."""
        excl = self.exclude_inputs if exclude_inputs is None else exclude_inputs
        idx = self.vocab.index(word) if word in self.vocab else -1
        if idx < 0:
            raise ValueError(f"{word!r} is not in the vocabulary")
        scores = self.all_scores.clone()
        if excl:
            for t in self.terms:
                if t.word != word:
                    scores[self.vocab.index(t.word)] = -torch.inf
        return int((scores > scores[idx]).sum()) + 1

    def to_dict(self) -> dict[str, object]:
        return {
            "expression": self.expression,
            "method": self.method,
            "exclude_inputs": self.exclude_inputs,
            "answers": [{"word": w, "score": float(s)} for w, s in zip(self.words, self.scores, strict=True)],
        }


def _cos_all(unit: torch.Tensor, rows: list[int]) -> torch.Tensor:
    return unit @ unit[rows].T  # [vocab, n_terms]


def solve_analogy(
    emb: Embeddings,
    expression: str | Sequence[Term],
    *,
    method: Method = "3cosadd",
    top: int = 10,
    exclude_inputs: bool = True,
) -> AnalogyResult:
    """Solve ``b - a + c`` style queries over every word of ``emb``.

    3CosAdd: cosine with the sum of the (unit-normalised, coefficient-weighted) term vectors.
    3CosMul (Levy & Goldberg 2014): ``prod cos'(d, pos) / (prod cos'(d, neg) + 1e-3)`` with
    ``cos' = (cos + 1) / 2``; its terms must have coefficient +1 or -1.
    """
    terms = parse_expression(expression) if isinstance(expression, str) else list(expression)
    text = expression if isinstance(expression, str) else " ".join(f"{t.coefficient:+g}*{t.word}" for t in terms)
    if not terms:
        raise ExpressionError("an analogy needs at least one word")
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    rows = emb.index([t.word for t in terms])
    unit = emb.normalized()
    coefs = torch.tensor([t.coefficient for t in terms], dtype=unit.dtype)
    if method == "3cosadd":
        query = (unit[rows] * coefs[:, None]).sum(0)
        query = query / query.norm().clamp_min(1e-12)
        scores = unit @ query
    elif method == "3cosmul":
        if not all(abs(abs(c) - 1.0) < 1e-12 for c in coefs.tolist()):
            raise ExpressionError("3CosMul takes plain words (coefficients +1 and -1 only); use 3CosAdd for weights")
        cos = (_cos_all(unit, rows) + 1) / 2
        pos = cos[:, coefs > 0].prod(1)
        neg = cos[:, coefs < 0].prod(1) if bool((coefs < 0).any()) else torch.zeros_like(pos)
        scores = pos / (neg + COSMUL_EPS)
    else:
        raise ValueError(f"method must be '3cosadd' or '3cosmul', got {method!r}")
    ranked = scores.clone()
    if exclude_inputs:
        ranked[rows] = -torch.inf
    k = min(top, len(emb) - (len(set(rows)) if exclude_inputs else 0))
    best = ranked.topk(k)
    return AnalogyResult(
        expression=text,
        terms=terms,
        method=method,
        exclude_inputs=exclude_inputs,
        words=[emb.words[int(i)] for i in best.indices],
        scores=best.values,
        all_scores=scores,
        vocab=emb.words,
    )


@dataclass(frozen=True)
class Neighbours:
    """Nearest words to a vector by cosine."""

    words: list[str]
    scores: Float[torch.Tensor, " top"]


def nearest_neighbours(
    emb: Embeddings, vector: Float[torch.Tensor, " d"] | str, top: int = 10, exclude: Sequence[str] = ()
) -> Neighbours:
    """The ``top`` words closest in cosine to ``vector`` (or to a word's vector), leaving out ``exclude``."""
    if isinstance(vector, str):
        vector = emb.vector(vector)
    if vector.shape != (emb.dim,):
        raise ShapeError(f"vector has shape {tuple(vector.shape)}, the embeddings have dimension {emb.dim}")
    scores = emb.normalized() @ (vector.float() / vector.float().norm().clamp_min(1e-12))
    if exclude:
        scores[emb.index(list(exclude))] = -torch.inf
    best = scores.topk(min(top, len(emb) - len(set(exclude))))
    return Neighbours([emb.words[int(i)] for i in best.indices], best.values)


@dataclass(frozen=True)
class SpanProjection:
    """``target ≈ sum_i coefficients[i] * basis[i]`` by least squares."""

    target: str
    basis: list[str]
    coefficients: Float[torch.Tensor, " k"]
    cosine: float
    """Cosine between the target and its projection onto the span."""
    residual_fraction: float
    """``|target - projection|^2 / |target|^2``: the share of the target the span does not explain."""
    normalized: bool
    """Whether unit-length vectors were used."""


def project_onto_span(emb: Embeddings, target: str, basis: Sequence[str], *, normalized: bool = True) -> SpanProjection:
    """Project ``target``'s vector onto the span of ``basis`` words (e.g. queen onto king, man, woman)."""
    if not basis:
        raise ValueError("the span needs at least one basis word")
    vecs = emb.normalized() if normalized else emb.vectors
    rows = emb.index([target, *basis])
    t = vecs[rows[0]].double()
    B = vecs[rows[1:]].double().T  # [d, k]
    coef = torch.linalg.lstsq(B, t[:, None]).solution[:, 0]
    proj = B @ coef
    resid = t - proj
    cos = float(t @ proj / (t.norm() * proj.norm()).clamp_min(1e-300))
    return SpanProjection(
        target=target,
        basis=list(basis),
        coefficients=coef.float(),
        cosine=cos,
        residual_fraction=float(resid @ resid / (t @ t)),
        normalized=normalized,
    )
