"""Google analogy set (19,544 questions), gensim's protocol: circuitscope's vectorised evaluation against a loop.

For GloVe 6B 50d and for the embedded Gemma-3-270M's input embeddings (leading-space tokens), it times
``evaluate_analogies`` on all questions and, side by side, a reference that answers one question at a time
the way gensim's ``KeyedVectors.evaluate_word_analogies`` does (``most_similar`` over the restricted
vocabulary, top 5 without the input rows, the first answer that is not an input word). If gensim is
importable, its own ``evaluate_word_analogies`` is timed instead of the port. The loop is timed on every
``--stride``-th question and extrapolated to the whole set (it is printed as such); the accuracies of the
two on that subset must agree.

    OMP_NUM_THREADS=1 python benchmarks/bench_analogies.py [--stride 20] [--threads 1] [--skip-gemma]

The CPU may be shared: the load average is printed next to every timing.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from circuitscope.embeddings import (
    AnalogyQuestions,
    Embeddings,
    evaluate_analogies,
    load_glove_6b_50d,
    load_google_analogies,
    model_embeddings,
)


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def gensim_port(emb: Embeddings, questions: AnalogyQuestions, restrict: int = 300_000) -> tuple[int, int, int]:
    """One question at a time, as gensim 4.4 does it (float32, case-insensitive): (correct, incorrect, oov)."""
    keys = emb.words[:restrict]
    vectors = emb.vectors[:restrict]
    unit = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)
    ok = {k.upper(): i for i, k in reversed(list(enumerate(keys)))}
    correct = incorrect = oov = 0
    for q in questions.questions:
        a, b, c, expected = (w.upper() for w in q)
        if any(w not in ok for w in (a, b, c, expected)):
            oov += 1
            continue
        idx = (ok[b], ok[c], ok[a])
        mean = unit[idx[0]] + unit[idx[1]] - unit[idx[2]]
        dists = unit @ (mean / mean.norm())
        best = dists.topk(5 + 3).indices.tolist()
        sims = [keys[i] for i in best if i not in idx][:5]
        predicted = None
        for element in sims:
            predicted = element.upper()
            if predicted not in (a, b, c):
                break
        correct += predicted == expected
        incorrect += predicted != expected
    return correct, incorrect, oov


def gensim_native(emb: Embeddings, questions: AnalogyQuestions) -> tuple[tuple[int, int, int], float] | None:
    """gensim's own ``evaluate_word_analogies`` on ``questions`` and its seconds, if gensim is importable."""
    try:
        from gensim.models import KeyedVectors  # type: ignore[import-not-found]
    except ImportError:
        return None
    import tempfile

    lines = []
    for si, name in enumerate(questions.sections):
        lines.append(f": {name}")
        lines += [" ".join(q) for q, s in zip(questions.questions, questions.section, strict=True) if s == si]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    kv = KeyedVectors(emb.dim)
    kv.add_vectors(emb.words, emb.vectors.numpy())
    t0 = time.perf_counter()
    _, sections = kv.evaluate_word_analogies(f.name)
    seconds = time.perf_counter() - t0
    total = sections[-1]
    return (
        len(total["correct"]),
        len(total["incorrect"]),
        len(questions) - len(total["correct"]) - len(total["incorrect"]),
    ), seconds


def subset(questions: AnalogyQuestions, stride: int) -> AnalogyQuestions:
    keep = list(range(0, len(questions), stride))
    return AnalogyQuestions(
        questions.sections, [questions.section[i] for i in keep], [questions.questions[i] for i in keep]
    )


def bench(emb: Embeddings, questions: AnalogyQuestions, stride: int) -> dict[str, object]:
    print(f"{emb.name}: {len(emb)} words x {emb.dim}", flush=True)
    print(f"  before: {load()}", flush=True)
    t0 = time.perf_counter()
    full = evaluate_analogies(emb, questions)
    ours = time.perf_counter() - t0
    print(f"  circuitscope, all {len(questions)} questions: {ours:.2f} s ({load()})", flush=True)
    part = subset(questions, stride)
    t0 = time.perf_counter()
    mine = evaluate_analogies(emb, part)
    ours_part = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = gensim_port(emb, part)
    loop = time.perf_counter() - t0
    got = (sum(s.correct for s in mine.sections), sum(s.incorrect for s in mine.sections), mine.n_oov)
    print(
        f"  subset of {len(part)} (every {stride}th): circuitscope {ours_part:.2f} s, "
        f"per-question loop {loop:.2f} s ({load()}); counts {got} vs loop {ref}",
        flush=True,
    )
    native = gensim_native(emb, part)
    if native is not None:
        print(f"  gensim's own evaluate_word_analogies on the subset: {native[1]:.2f} s; counts {native[0]}")
    else:
        print("  (gensim is not importable here: the loop is a port of its evaluation)")
    if got != ref:
        raise SystemExit(f"MISMATCH on the subset: circuitscope {got} vs the per-question loop {ref}")
    loop_full = loop * len(questions) / len(part)
    print(f"  per-question loop extrapolated to all questions: {loop_full:.1f} s -> ratio {loop_full / ours:.1f}x")
    row = {
        "embeddings": emb.name,
        "words": len(emb),
        "dim": emb.dim,
        "seconds_all_questions": ours,
        "loop_seconds_subset": loop,
        "loop_seconds_extrapolated": loop_full,
        "ratio": loop_full / ours,
        "subset_questions": len(part),
        **{k: full.to_dict()[k] for k in ("evaluated", "oov_skipped", "overall_accuracy")},
        "semantic_accuracy": full.semantic_accuracy,
        "syntactic_accuracy": full.syntactic_accuracy,
        "load_after": os.getloadavg(),
    }
    print(
        f"  accuracy overall {full.overall_accuracy:.4f}, semantic {full.semantic_accuracy:.4f}, "
        f"syntactic {full.syntactic_accuracy:.4f}; evaluated {len(questions) - full.n_oov}, OOV {full.n_oov}"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stride", type=int, default=20, help="The loop runs on every N-th question.")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's).")
    parser.add_argument("--skip-gemma", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)  # a benchmark script owns its process
    print(f"torch threads: {torch.get_num_threads()}; {load()}")
    questions = load_google_analogies()
    t0 = time.perf_counter()
    glove = load_glove_6b_50d()
    print(f"GloVe 6B 50d loaded in {time.perf_counter() - t0:.2f} s (npy + parquet word index)")
    rows = [bench(glove, questions, args.stride)]
    if not args.skip_gemma:
        import circuitscope as cs

        model = cs.load_model(cs.DEFAULT_MODEL)
        rows.append(bench(model_embeddings(model, "W_E", "leading"), questions, args.stride))
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
