"""Real data: the Google analogy set from the gensim wheel, GloVe 6B 50d from its PyPI wheel, Gemma's embeddings."""

from __future__ import annotations

import pytest

import circuitscope as cs
from circuitscope.embeddings import load_glove_6b_50d, load_google_analogies, model_embeddings, solve_analogy

pytestmark = pytest.mark.real

SECTIONS = {
    "capital-common-countries": 506, "capital-world": 4524, "currency": 866, "city-in-state": 2467, "family": 506,
    "gram1-adjective-to-adverb": 992, "gram2-opposite": 812, "gram3-comparative": 1332, "gram4-superlative": 1122,
    "gram5-present-participle": 1056, "gram6-nationality-adjective": 1599, "gram7-past-tense": 1560,
    "gram8-plural": 1332, "gram9-plural-verbs": 870,
}  # fmt: skip


def test_google_analogy_set_has_its_published_section_counts() -> None:
    q = load_google_analogies()
    assert len(q) == 19544 and q.sections == list(SECTIONS)
    counts = {name: q.section.count(i) for i, name in enumerate(q.sections)}
    assert counts == SECTIONS


def test_glove_king_man_woman() -> None:
    glove = load_glove_6b_50d()
    assert len(glove) == 400_000 and glove.dim == 50 and glove.words[:3] == ["the", ",", "."]
    assert solve_analogy(glove, "king - man + woman", top=1).words == ["queen"]
    assert solve_analogy(glove, "king - man + woman", top=1, exclude_inputs=False).words == ["king"]


def test_gemma_token_embeddings_king_man_woman() -> None:
    model = cs.load_model(cs.DEFAULT_MODEL)
    emb = model_embeddings(model, "W_E", "leading")
    assert "king" in emb and emb.ids is not None
    assert emb.ids[emb.index("king")[0]] == model.to_single_token(" king")
    assert solve_analogy(emb, "king - man + woman", top=1).words == ["queen"]


def test_glove_benchmark_equals_a_per_question_reference_on_a_subset(tmp_path) -> None:
    """Every 80th Google question (245, all 14 sections): the vectorised run equals the one-question loop."""
    from circuitscope.data.pypi import data_home
    from circuitscope.embeddings import evaluate_analogies, parse_analogy_file
    from circuitscope.embeddings.benchmark import GOOGLE_MEMBER
    from tests.embeddings.test_search import _gensim_loop

    full = data_home() / "google-analogies" / GOOGLE_MEMBER
    load_google_analogies()  # fetch once
    lines, kept = full.read_text().splitlines(), []
    n = 0
    for line in lines:
        if line.startswith(": "):
            kept.append(line)
        else:
            if n % 80 == 0:
                kept.append(line)
            n += 1
    path = tmp_path / "subset.txt"
    path.write_text("\n".join(kept) + "\n")
    glove = load_glove_6b_50d()
    small = type(glove)(glove.vectors[:300_000], glove.words[:300_000], "glove-300k")
    ours = evaluate_analogies(glove, parse_analogy_file(path))
    assert sum(s.correct + s.incorrect + s.oov for s in ours.sections) == 245
    assert [(s.correct, s.incorrect, s.oov) for s in ours.sections] == _gensim_loop(small, path)
