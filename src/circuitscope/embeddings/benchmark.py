"""The Google analogy test set (Mikolov et al. 2013) under gensim's ``evaluate_word_analogies`` protocol, vectorised.

Protocol (gensim 4.4, ``KeyedVectors.evaluate_word_analogies``): only the first
``restrict_vocab`` words of the matrix count (frequency order); with ``case_insensitive``
every word is upper-cased and a case-folded word maps to its first (most frequent) variant;
a question with any word outside that vocabulary is skipped and counted as OOV; the answer
is the best of ``most_similar(positive=[b, c], negative=[a], topn=5)`` (which bars the three
input rows) whose upper-cased form is not one of the inputs. Accuracy is correct / (correct +
incorrect) over the questions that were not skipped.

Vectorised: the cosines of every vocabulary word with each distinct question word are
computed once, so a question costs three row additions (3CosAdd) or products (3CosMul)
instead of a matrix-vector product.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from jaxtyping import Float

from circuitscope.embeddings.analogy import COSMUL_EPS
from circuitscope.embeddings.matrix import Embeddings
from circuitscope.errors import CircuitscopeError, LoadError

__all__ = [
    "GENSIM_REQUIREMENT",
    "AnalogyBenchmarkResult",
    "AnalogyQuestions",
    "SectionScore",
    "evaluate_analogies",
    "load_google_analogies",
    "parse_analogy_file",
    "plot_analogy_benchmark",
]

GENSIM_REQUIREMENT = "gensim==4.4.0"
GOOGLE_MEMBER = "gensim/test/test_data/questions-words.txt"
TOPN = 5
"""gensim asks ``most_similar`` for 5 answers and takes the first that is not an input word."""


@dataclass(frozen=True)
class AnalogyQuestions:
    """Analogy questions ``a : b :: c : d`` in named sections."""

    sections: list[str]
    """Section names in file order (``capital-common-countries``, ..., ``gram9-plural-verbs``)."""
    section: list[int]
    """The section of each question."""
    questions: list[tuple[str, str, str, str]]
    """``(a, b, c, expected)`` as written in the file."""

    def __len__(self) -> int:
        return len(self.questions)


def parse_analogy_file(path: str | Path) -> AnalogyQuestions:
    """Read a ``questions-words.txt``-style file (``: section`` headers, four words a line)."""
    sections: list[str] = []
    section: list[int] = []
    questions: list[tuple[str, str, str, str]] = []
    for line_no, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith(": "):
            sections.append(line[2:].strip())
            continue
        parts = line.split()
        if not parts:
            continue
        if not sections:
            raise CircuitscopeError(f"{path}:{line_no}: a question before any ': section' header")
        if len(parts) != 4:
            continue  # gensim skips malformed lines too
        questions.append((parts[0], parts[1], parts[2], parts[3]))
        section.append(len(sections) - 1)
    return AnalogyQuestions(sections, section, questions)


def load_google_analogies() -> AnalogyQuestions:
    """The 19,544 questions in 14 sections, read out of the gensim wheel (downloaded once, not installed)."""
    from circuitscope.data.pypi import fetch_members

    folder = fetch_members(GENSIM_REQUIREMENT, GOOGLE_MEMBER, "google-analogies")
    path = folder / GOOGLE_MEMBER
    if not path.is_file():
        raise LoadError(f"{path} is missing; delete {folder} and retry")
    return parse_analogy_file(path)


@dataclass(frozen=True)
class SectionScore:
    name: str
    correct: int
    incorrect: int
    oov: int
    """Questions skipped because a word is outside the (restricted) vocabulary."""

    @property
    def accuracy(self) -> float:
        n = self.correct + self.incorrect
        return self.correct / n if n else float("nan")


@dataclass(frozen=True)
class AnalogyBenchmarkResult:
    """Accuracy per section and overall, gensim's way."""

    embeddings: str
    method: str
    restrict_vocab: int
    case_insensitive: bool
    sections: list[SectionScore]
    correct: torch.Tensor
    """Per question: 1 correct, 0 incorrect, -1 skipped (OOV)."""
    predicted: list[str | None]
    """Per question: the answer given (upper-cased if case-insensitive), None if skipped."""

    def _acc(self, keep: list[SectionScore]) -> float:
        c = sum(s.correct for s in keep)
        n = c + sum(s.incorrect for s in keep)
        return c / n if n else float("nan")

    @property
    def semantic(self) -> list[SectionScore]:
        return [s for s in self.sections if not s.name.startswith("gram")]

    @property
    def syntactic(self) -> list[SectionScore]:
        return [s for s in self.sections if s.name.startswith("gram")]

    @property
    def overall_accuracy(self) -> float:
        return self._acc(self.sections)

    @property
    def semantic_accuracy(self) -> float:
        return self._acc(self.semantic)

    @property
    def syntactic_accuracy(self) -> float:
        return self._acc(self.syntactic)

    @property
    def n_questions(self) -> int:
        return int(self.correct.numel())

    @property
    def n_oov(self) -> int:
        return sum(s.oov for s in self.sections)

    def to_dict(self) -> dict[str, object]:
        def nan_none(x: float) -> float | None:
            return None if x != x else x

        return {
            "embeddings": self.embeddings,
            "method": self.method,
            "restrict_vocab": self.restrict_vocab,
            "case_insensitive": self.case_insensitive,
            "questions": self.n_questions,
            "oov_skipped": self.n_oov,
            "evaluated": self.n_questions - self.n_oov,
            "overall_accuracy": nan_none(self.overall_accuracy),
            "semantic_accuracy": nan_none(self.semantic_accuracy),
            "syntactic_accuracy": nan_none(self.syntactic_accuracy),
            "sections": [
                {
                    "section": s.name,
                    "correct": s.correct,
                    "incorrect": s.incorrect,
                    "oov": s.oov,
                    "accuracy": nan_none(s.accuracy),
                }
                for s in self.sections
            ],
        }


def evaluate_analogies(
    emb: Embeddings,
    questions: AnalogyQuestions,
    *,
    restrict_vocab: int = 300_000,
    case_insensitive: bool = True,
    method: Literal["3cosadd", "3cosmul"] = "3cosadd",
    batch_size: int = 256,
) -> AnalogyBenchmarkResult:
    """Score every question exactly as gensim's ``evaluate_word_analogies`` does, in batches."""
    if restrict_vocab < 1:
        raise ValueError(f"restrict_vocab must be positive, got {restrict_vocab}")
    if method not in ("3cosadd", "3cosmul"):
        raise ValueError(f"method must be '3cosadd' or '3cosmul', got {method!r}")
    fold = str.upper if case_insensitive else (lambda w: w)
    n_vocab = min(restrict_vocab, len(emb))
    ok_words = emb.words[:n_vocab]
    ok_vocab: dict[str, int] = {}
    for i in range(n_vocab - 1, -1, -1):  # reversed, so the first (most frequent) variant wins
        ok_vocab[fold(ok_words[i])] = i
    folded_vocab = [fold(w) for w in ok_words]

    n = len(questions)
    status = torch.full((n,), -1, dtype=torch.long)
    predicted: list[str | None] = [None] * n
    todo: list[int] = []
    rows: list[tuple[int, int, int]] = []
    folded_q: list[tuple[str, str, str, str]] = []
    for qi, q in enumerate(questions.questions):
        f = (fold(q[0]), fold(q[1]), fold(q[2]), fold(q[3]))
        folded_q.append(f)
        if all(w in ok_vocab for w in f):
            todo.append(qi)
            rows.append((ok_vocab[f[0]], ok_vocab[f[1]], ok_vocab[f[2]]))

    if todo:
        top_rows = _top_candidates(emb.normalized()[:n_vocab], rows, method, min(TOPN + 3, n_vocab), batch_size)
        for j, qi in enumerate(todo):
            inputs = set(rows[j])
            ignore = set(folded_q[qi][:3])
            answer: str | None = None
            for idx in [c for c in top_rows[j] if c not in inputs][:TOPN]:
                answer = folded_vocab[idx]
                if answer not in ignore:
                    break
            predicted[qi] = answer
            status[qi] = int(answer == folded_q[qi][3])

    section_ids = torch.tensor(questions.section)
    scores_by_section = []
    for si, name in enumerate(questions.sections):
        s = status[section_ids == si]
        scores_by_section.append(SectionScore(name, int((s == 1).sum()), int((s == 0).sum()), int((s == -1).sum())))
    return AnalogyBenchmarkResult(
        embeddings=emb.name,
        method=method,
        restrict_vocab=restrict_vocab,
        case_insensitive=case_insensitive,
        sections=scores_by_section,
        correct=status,
        predicted=predicted,
    )


def _top_candidates(
    unit: Float[torch.Tensor, "vocab d"],
    rows: list[tuple[int, int, int]],
    method: str,
    k: int,
    batch_size: int,
    chunk: int = 4096,
) -> list[list[int]]:
    """For each (a, b, c), the ``k`` best rows of ``unit`` by 3CosAdd / 3CosMul score, best first.

    Blocked over the vocabulary: for each chunk of words, the cosines with every distinct
    question word are computed once ([distinct, chunk]); each question's scores in the chunk are
    then three row lookups, and a running top-k is merged. Memory stays at a few tens of MB.
    """
    distinct = sorted({r for triple in rows for r in triple})
    slot = {r: i for i, r in enumerate(distinct)}
    triples = torch.tensor([[slot[a], slot[b], slot[c]] for a, b, c in rows])
    anchors = unit[distinct]
    n_q, n_vocab = len(rows), unit.shape[0]
    best_v = torch.full((n_q, k), -torch.inf)
    best_i = torch.zeros((n_q, k), dtype=torch.long)
    width = min(chunk, n_vocab)
    cos = torch.empty(len(distinct), width)
    buf = torch.empty(batch_size, width)
    tmp = torch.empty(batch_size, width)
    for vs in range(0, n_vocab, width):
        block = unit[vs : vs + width]
        w = block.shape[0]
        c = cos[:, :w]
        torch.matmul(anchors, block.T, out=c)
        if method == "3cosmul":
            c.add_(1).mul_(0.5)
        kk = min(k, w)
        for qs in range(0, n_q, batch_size):
            t = triples[qs : qs + batch_size]
            n = t.shape[0]
            s, x = buf[:n, :w], tmp[:n, :w]
            torch.index_select(c, 0, t[:, 1], out=s)
            torch.index_select(c, 0, t[:, 2], out=x)
            if method == "3cosadd":
                s.add_(x)
                torch.index_select(c, 0, t[:, 0], out=x)
                s.sub_(x)
            else:
                s.mul_(x)
                torch.index_select(c, 0, t[:, 0], out=x)
                s.div_(x.add_(COSMUL_EPS))
            top = s.topk(kk, dim=1)
            cand_v = torch.cat([best_v[qs : qs + n], top.values], 1)
            cand_i = torch.cat([best_i[qs : qs + n], top.indices + vs], 1)
            merged = cand_v.topk(k, dim=1)
            best_v[qs : qs + n] = merged.values
            best_i[qs : qs + n] = cand_i.gather(1, merged.indices)
    return best_i.tolist()


def plot_analogy_benchmark(result: AnalogyBenchmarkResult):  # -> plotly Figure
    """Accuracy per section (bars), with the OOV share in the hover text."""
    import plotly.graph_objects as go

    names = [s.name for s in result.sections]
    acc = [s.accuracy if s.correct + s.incorrect else 0.0 for s in result.sections]
    hover = [
        f"{s.name}<br>accuracy {s.accuracy:.3f}<br>{s.correct}/{s.correct + s.incorrect} correct<br>{s.oov} OOV skipped"
        for s in result.sections
    ]
    colors = ["#3558d4" if not n.startswith("gram") else "#d48a35" for n in names]
    fig = go.Figure(go.Bar(x=names, y=acc, marker_color=colors, hovertext=hover, hoverinfo="text"))
    fig.update_layout(
        title=f"{result.embeddings}: {result.method}, overall {result.overall_accuracy:.3f} "
        f"(semantic {result.semantic_accuracy:.3f}, syntactic {result.syntactic_accuracy:.3f})",
        yaxis_title="accuracy",
        yaxis_range=[0, 1],
        height=420,
        margin=dict(l=50, r=20, t=60, b=140),
    )
    return fig
