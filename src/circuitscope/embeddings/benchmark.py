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

import torch

from circuitscope.embeddings.analogy import METHODS, Method
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
    method: Method
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
    method: Method = "3cosadd",
    batch_size: int = 1024,
    threads: int | None = None,
) -> AnalogyBenchmarkResult:
    """Score every question exactly as gensim's ``evaluate_word_analogies`` does, all at once.

    The best row is found by :func:`circuitscope.embeddings.search.best_rows` with the input rows
    and every other row that folds to an input word barred; gensim's rule for those other rows
    (its top 5 answers exclude only the three input rows, and it gives the first whose folded form
    is not an input word, else the fifth) is then applied to their few exact scores.
    ``batch_size``: questions whose block bounds are held at once; ``threads``: torch threads for the
    search (None: :func:`~circuitscope.embeddings.search.search_threads`, the free cores).
    """
    if restrict_vocab < 1:
        raise ValueError(f"restrict_vocab must be positive, got {restrict_vocab}")
    if method not in METHODS:
        raise ValueError(f"method must be '3cosadd' or '3cosmul', got {method!r}")
    fold = str.upper if case_insensitive else (lambda w: w)
    n_vocab = min(restrict_vocab, len(emb))
    folded_vocab = list(map(fold, emb.words[:n_vocab]))
    # reversed, so the first (most frequent) variant of a folded word wins
    ok_vocab = dict(zip(reversed(folded_vocab), range(n_vocab - 1, -1, -1), strict=True))
    canonical = torch.tensor(list(map(ok_vocab.__getitem__, folded_vocab)), dtype=torch.long)  # [vocab]

    n = len(questions)
    lookup = [[ok_vocab.get(fold(w), -1) for w in q] for q in questions.questions]  # parsing: one dict lookup a word
    rows = torch.tensor(lookup, dtype=torch.long).reshape(n, 4)
    todo = (rows >= 0).all(1).nonzero()[:, 0]
    abc, expected = rows[todo, :3], rows[todo, 3]
    status = torch.full((n,), -1, dtype=torch.long)
    predicted: list[str | None] = [None] * n
    if todo.numel():
        vectors = emb.vectors[:n_vocab]
        unit = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)  # as Embeddings.normalized, fewer rows
        answer = _gensim_answers(unit, abc, canonical, method, batch_size, threads)
        status[todo] = (canonical[answer.clamp_min(0)] == expected).long().masked_fill(answer < 0, 0)
        for qi, row in zip(todo.tolist(), answer.tolist(), strict=True):
            predicted[qi] = folded_vocab[row] if row >= 0 else None

    section_ids = torch.tensor(questions.section, dtype=torch.long)
    per_section = torch.stack([status == v for v in (1, 0, -1)], 1)  # [n, 3]: correct, incorrect, OOV
    counts = torch.zeros(len(questions.sections), 3, dtype=torch.long).index_add_(0, section_ids, per_section.long())
    scores_by_section = [
        SectionScore(name, int(c[0]), int(c[1]), int(c[2])) for name, c in zip(questions.sections, counts, strict=True)
    ]
    return AnalogyBenchmarkResult(
        embeddings=emb.name,
        method=method,
        restrict_vocab=restrict_vocab,
        case_insensitive=case_insensitive,
        sections=scores_by_section,
        correct=status,
        predicted=predicted,
    )


def _gensim_answers(
    unit: torch.Tensor,
    abc: torch.Tensor,
    canonical: torch.Tensor,
    method: Method,
    batch_size: int,
    threads: int | None,
) -> torch.Tensor:
    """gensim's answer row to each question (-1 for none): the best row that does not fold to an input word,
    unless all of the top 5 rows (the three input rows barred) fold to one (then the 5th of them)."""
    from circuitscope.embeddings.search import SearchSettings, analogy_scores, best_rows

    variants = _variants(canonical, abc)  # other rows folding to an input word: [q, m]
    variants = torch.nn.functional.pad(variants, (0, max(0, TOPN - variants.shape[1])), value=-1)
    settings = SearchSettings(question_batch=batch_size)
    _, best = best_rows(unit, abc, torch.cat([abc, variants], 1), method, settings=settings, threads=threads)
    var_scores = analogy_scores(unit, abc, variants, method)
    best_score = analogy_scores(unit, abc, best[:, None], method)[:, 0]  # same formula as the variants
    ranked_v, order = var_scores.sort(1, descending=True)
    ranked = variants.gather(1, order)
    n_var = (ranked >= 0).sum(1)
    above = (ranked_v > best_score[:, None]).sum(1)  # variants gensim ranks before the best other row
    # gensim's answer: the best other row, unless its top 5 are all variants (then the 5th) or there is none
    k = torch.where(best >= 0, torch.full_like(best, TOPN), n_var.clamp_max(TOPN)) - 1
    fifth = ranked.gather(1, k.clamp_min(0)[:, None])[:, 0]
    return torch.where((above >= TOPN) | (best < 0), torch.where(k >= 0, fifth, -1), best)


def _variants(canonical: torch.Tensor, abc: torch.Tensor) -> torch.Tensor:
    """For each question, the rows other than ``a, b, c`` that fold to one of them (-1 pads): [q, m]."""
    others = (canonical != torch.arange(canonical.shape[0])).nonzero()[:, 0]
    if others.numel() == 0:
        return abc.new_full((abc.shape[0], 0), -1)
    owner = canonical[others]
    order = torch.argsort(owner, stable=True)
    others, owner = others[order], owner[order]
    heads, counts = torch.unique_consecutive(owner, return_counts=True)
    width = int(counts.max())
    table = torch.full((heads.shape[0], width), -1, dtype=torch.long)
    slot = torch.arange(others.shape[0]) - torch.repeat_interleave(counts.cumsum(0) - counts, counts)
    table[torch.repeat_interleave(torch.arange(heads.shape[0]), counts), slot] = others
    # a, b or c repeated in one question: list its variants once
    distinct = abc.clone()
    distinct[:, 1] = torch.where(abc[:, 1] == abc[:, 0], -1, abc[:, 1])
    distinct[:, 2] = torch.where((abc[:, 2] == abc[:, 0]) | (abc[:, 2] == abc[:, 1]), -1, abc[:, 2])
    pos = torch.searchsorted(heads, distinct.clamp_min(0))
    hit = (pos < heads.shape[0]) & (heads[pos.clamp_max(heads.shape[0] - 1)] == distinct) & (distinct >= 0)
    found = torch.where(hit[:, :, None], table[pos.clamp_max(heads.shape[0] - 1)], -1)  # [q, 3, width]
    return found.reshape(abc.shape[0], -1)
