"""The analogy solver on hand-made matrices, and the benchmark against a literal port of gensim's loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from circuitscope.embeddings import (
    Embeddings,
    ExpressionError,
    Term,
    VocabularyError,
    evaluate_analogies,
    nearest_neighbours,
    parse_analogy_file,
    parse_expression,
    project_onto_span,
    solve_analogy,
)

# 2-d toy: royalty on x, gender on y
TOY = {
    "king": [1.0, 1.0],
    "queen": [1.0, -1.0],
    "man": [0.1, 1.0],
    "woman": [0.1, -1.0],
    "prince": [0.9, 1.2],
    "apple": [-1.0, 0.1],
}


def toy() -> Embeddings:
    return Embeddings(torch.tensor(list(TOY.values())), list(TOY), "toy")


def _unit(w: str) -> np.ndarray:
    v = np.array(TOY[w])
    return v / np.linalg.norm(v)


def test_3cosadd_matches_a_hand_computation() -> None:
    emb = toy()
    q = _unit("king") - _unit("man") + _unit("woman")
    q /= np.linalg.norm(q)
    expected = {w: float(_unit(w) @ q) for w in TOY}
    res = solve_analogy(emb, "king - man + woman", top=3)
    ranked = sorted((w for w in TOY if w not in ("king", "man", "woman")), key=lambda w: -expected[w])
    assert res.words == ranked[:3] and res.words[0] == "queen"
    # float32 scores vs the float64 hand computation: float32 rounding of cosines <=1
    np.testing.assert_allclose(res.scores.numpy(), [expected[w] for w in ranked[:3]], rtol=1e-5)
    with_inputs = solve_analogy(emb, "king - man + woman", top=6, exclude_inputs=False)
    assert with_inputs.words == sorted(TOY, key=lambda w: -expected[w])
    assert with_inputs.rank("queen") == 1 + sum(expected[w] > expected["queen"] for w in TOY)
    assert res.rank("queen") == 1


def test_3cosmul_matches_a_hand_computation() -> None:
    emb = toy()

    def c(x: str, y: str) -> float:
        return (float(_unit(x) @ _unit(y)) + 1) / 2

    expected = {w: c(w, "king") * c(w, "woman") / (c(w, "man") + 1e-3) for w in TOY}
    res = solve_analogy(emb, "king - man + woman", method="3cosmul", top=3)
    ranked = sorted((w for w in TOY if w not in ("king", "man", "woman")), key=lambda w: -expected[w])
    assert res.words == ranked[:3]
    np.testing.assert_allclose(res.scores.numpy(), [expected[w] for w in ranked[:3]], rtol=1e-5)  # as above


def test_neighbours_and_projection() -> None:
    emb = toy()
    nn = nearest_neighbours(emb, "king", top=2, exclude=["king"])
    assert nn.words == ["prince", "man"]
    proj = project_onto_span(emb, "queen", ["king", "man", "woman"], normalized=False)
    # queen = king - man + woman exactly in raw coordinates (2-d, so the span is everything)
    assert proj.residual_fraction == pytest.approx(0.0, abs=1e-12) and proj.cosine == pytest.approx(1.0)
    recon = sum(float(c) * np.array(TOY[w]) for c, w in zip(proj.coefficients, proj.basis, strict=True))
    np.testing.assert_allclose(recon, TOY["queen"], atol=1e-5)  # float32 least-squares coefficients: rounding
    one = project_onto_span(emb, "queen", ["king"])
    assert (
        one.residual_fraction == pytest.approx(1.0, abs=1e-6) and abs(float(one.coefficients[0])) < 1e-6
    )  # orthogonal


def test_expressions_parse_or_fail_clearly() -> None:
    assert parse_expression("king - man + woman") == [Term("king", 1), Term("man", -1), Term("woman", 1)]
    assert parse_expression("2*paris - france+0.5*rome") == [Term("paris", 2), Term("france", -1), Term("rome", 0.5)]
    assert parse_expression("self-esteem") == [Term("self-esteem", 1)]
    for bad in ["", "king man", "king - - man", "king + *", "king -"]:
        with pytest.raises(ExpressionError):
            parse_expression(bad)
    with pytest.raises(VocabularyError, match=r"'emperor'.*'empress'"):
        solve_analogy(toy(), "emperor - man + empress")
    with pytest.raises(ExpressionError, match="3CosMul"):
        solve_analogy(toy(), "2*king - man", method="3cosmul")


def _gensim_reference(emb: Embeddings, path: Path, restrict: int) -> tuple[list[tuple[str, int, int]], int]:
    """A literal port of gensim 4.4's evaluate_word_analogies + most_similar (3CosAdd, case-insensitive)."""
    keys = emb.words
    vecs = emb.vectors.double().numpy()
    norms = np.linalg.norm(vecs, axis=1)
    ok_keys = keys[:restrict]
    ok_vocab = {k.upper(): keys.index(k) for k in reversed(ok_keys)}
    sections: list[tuple[str, int, int]] = []
    oov = 0
    for line in path.read_text().splitlines():
        if line.startswith(": "):
            sections.append((line[2:].strip(), 0, 0))
            continue
        a, b, c, expected = (w.upper() for w in line.split())
        if any(w not in ok_vocab for w in (a, b, c, expected)):
            oov += 1
            continue
        idx = [ok_vocab[b], ok_vocab[c], ok_vocab[a]]
        mean = vecs[idx[0]] / norms[idx[0]] + vecs[idx[1]] / norms[idx[1]] - vecs[idx[2]] / norms[idx[2]]
        mean /= np.linalg.norm(mean)
        dists = vecs[:restrict] @ mean / norms[:restrict]
        best = np.argsort(-dists, kind="stable")[: 5 + 3]
        sims = [keys[i] for i in best if i not in idx][:5]
        predicted = None
        for element in sims:
            predicted = element.upper()
            if predicted in ok_vocab and predicted not in {a, b, c}:
                break
        name, ok, bad = sections[-1]
        sections[-1] = (name, ok + (predicted == expected), bad + (predicted != expected))
    return sections, oov


def test_benchmark_reproduces_gensims_protocol(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    words = [f"w{i}" for i in range(60)] + ["Paris", "paris", "France", "Rome", "Italy", "rare"]
    emb = Embeddings(torch.randn(len(words), 6, generator=g), words, "random")
    rng = np.random.default_rng(0)
    lines = [": first"]
    for _ in range(80):
        lines.append(" ".join(rng.choice(words[:64], 4)))
    lines += [
        "PARIS France Rome Italy",
        "paris france rome italy",
        "w1 w2 rare w3",
        "w1 w2 unknown w3",
        ": gram-second",
    ]
    for _ in range(60):
        lines.append(" ".join(rng.choice(words, 4)))
    path = tmp_path / "q.txt"
    path.write_text("\n".join(lines) + "\n")
    questions = parse_analogy_file(path)
    assert questions.sections == ["first", "gram-second"] and len(questions) == 144
    for restrict in (64, 300_000):
        ours = evaluate_analogies(emb, questions, restrict_vocab=restrict, batch_size=7)
        ref, oov = _gensim_reference(emb, path, restrict)
        assert [(s.name, s.correct, s.incorrect) for s in ours.sections] == ref
        assert ours.n_oov == oov
        assert ours.n_oov >= (2 if restrict == 64 else 1)
    assert 0 < ours.overall_accuracy < 1 and ours.syntactic == [ours.sections[1]]
