"""Google analogy set (19,544 questions), gensim's protocol: the cold command, the load, the search, and a loop.

1. Cold process (issue 15, target 5: <= 8 s): ``circuitscope analogies --embeddings glove-6b-50d --benchmark
   google --json`` timed end to end in fresh processes, side by side: the code of ``--before`` (default the
   commit before the cache, extracted with ``git archive`` into a temporary folder and put first on
   PYTHONPATH), then this tree's code with an empty embeddings cache (the run that builds it: a temporary
   ``CIRCUITSCOPE_HOME`` whose ``data`` links to the real one), then ``--cold-runs`` runs with the cache warm.
   Every run's results must equal the before run's (same answers, same accuracy).
2. Loading GloVe in a fresh process by parsing its wheel files (npy + parquet) vs from the cache; the search
   in one process on 1 torch thread vs torch's default, interleaved (``search_threads`` picks between them).
3. ``evaluate_analogies`` on all questions vs a reference that answers one question at a time the way gensim's
   ``KeyedVectors.evaluate_word_analogies`` does, on every ``--stride``-th question (extrapolated, printed as
   such; both on one torch thread); the counts of the two on that subset must agree. For GloVe and (unless
   ``--skip-gemma``) the embedded Gemma-3-270M's input embeddings.

    python benchmarks/bench_analogies.py [--cold-runs 3] [--before REF] [--stride 20] [--skip-gemma]

The CPU may be shared: the load average is printed next to every timing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from circuitscope.core.loading import cache_home
from circuitscope.embeddings import (
    AnalogyQuestions,
    Embeddings,
    evaluate_analogies,
    load_glove_6b_50d,
    load_google_analogies,
    model_embeddings,
)
from circuitscope.embeddings.search import search_threads

REPO = Path(__file__).resolve().parent.parent
BEFORE = "9f3f237"
"""The last commit before the embeddings cache and the search's thread choice."""
COMMAND = ["analogies", "--embeddings", "glove-6b-50d", "--benchmark", "google", "--json"]


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def cold_run(label: str, env: dict[str, str], out: Path) -> tuple[float, dict[str, object]]:
    """One ``circuitscope analogies`` in a fresh interpreter: its wall seconds and its --json payload."""
    code = "import sys; from circuitscope.cli.main import main; sys.argv[0] = 'circuitscope'; main()"
    before = load()
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *COMMAND, "--out", str(out)], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{label} failed:\n{done.stderr[-2000:]}")
    payload = json.loads(done.stdout)
    search = sum(payload["seconds"])
    print(f"  {label}: {wall:.2f} s wall, of which the search {search:.2f} s ({before} -> {load()})", flush=True)
    return wall, payload


def cold(before_ref: str, runs: int) -> dict[str, object]:
    """The cold command, side by side: the ``before_ref`` code, this code building the cache, then warm."""
    print(f"cold process: circuitscope {' '.join(COMMAND)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-analogies-") as tmp_name:
        tmp = Path(tmp_name)
        old_src = tmp / "before"
        old_src.mkdir()
        git = ["git", "-C", str(REPO), "archive", before_ref, "src"]
        archive = subprocess.run(git, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(old_src)], input=archive.stdout, check=True)
        home = tmp / "home"
        home.mkdir()
        (home / "data").symlink_to(cache_home() / "data")  # the downloaded wheels' files, read only
        base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CIRCUITSCOPE_HOME")}
        old_env = {**base, "PYTHONPATH": str(old_src / "src")}
        new_env = {**base, "CIRCUITSCOPE_HOME": str(home)}
        out = tmp / "report.html"
        before_wall, reference = cold_run(f"before ({before_ref}: npy + parquet parsed, torch's threads)", old_env, out)
        build_wall, built = cold_run("after, first run (builds the cache)", new_env, out)
        warm = [cold_run(f"after, cache warm, run {i + 1}", new_env, out) for i in range(runs)]
        for payload in (built, *(p for _, p in warm)):
            if payload["results"] != reference["results"]:
                raise SystemExit("MISMATCH: the cold runs' results differ from the before run's")
    best = min(w for w, _ in warm)
    print(f"  before / after (warm, best of {runs}): {before_wall / best:.1f}x; results identical", flush=True)
    return {
        "before_ref": before_ref,
        "before_seconds": before_wall,
        "build_seconds": build_wall,
        "warm_seconds": [w for w, _ in warm],
        "before_search_seconds": sum(reference["seconds"]),  # type: ignore[arg-type]
        "warm_search_seconds": [sum(p["seconds"]) for _, p in warm],  # type: ignore[arg-type]
    }


LOAD_CODE = """
import sys, time
import torch
from circuitscope.embeddings import Embeddings, load_glove_6b_50d
from circuitscope.embeddings.matrix import _glove_sources, _parse_glove
t0 = time.perf_counter()
if sys.argv[1] == "parse":
    vectors, words = _parse_glove(*_glove_sources())
    emb = Embeddings(torch.from_numpy(vectors), words, "glove-6b-50d")
else:
    emb = load_glove_6b_50d()
print(time.perf_counter() - t0)
"""


def in_process(questions: AnalogyQuestions, repeats: int) -> Embeddings:
    """Parse vs cache for the load (each in a fresh process, torch imported); 1 thread vs torch's default."""
    default = torch.get_num_threads()
    glove = load_glove_6b_50d()  # builds the cache if needed
    print("loading GloVe in a fresh process (after importing torch and circuitscope):", flush=True)
    for _ in range(repeats):
        seconds = {}
        for kind in ("parse", "cache"):
            done = subprocess.run([sys.executable, "-c", LOAD_CODE, kind], capture_output=True, text=True, check=True)
            seconds[kind] = float(done.stdout.split()[-1])
        print(f"  parse npy + parquet (pyarrow) {seconds['parse']:.2f} s, from the cache {seconds['cache']:.2f} s "
              f"({load()})", flush=True)  # fmt: skip
    print(f"the search in one process, 1 thread vs torch's default ({default}); search_threads() picks "
          f"{search_threads()} now ({load()}):", flush=True)  # fmt: skip
    for _ in range(repeats):
        times = {}
        for threads in (1, default):
            t0 = time.perf_counter()
            evaluate_analogies(glove, questions, threads=threads)
            times[threads] = time.perf_counter() - t0
        ratio = times[default] / times[1]
        print(
            f"  1 thread {times[1]:.2f} s, {default} threads {times[default]:.2f} s -> {ratio:.1f}x ({load()})",
            flush=True,
        )
    return glove


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
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the loop's fastest setting on a shared machine, as the search's
    try:
        t0 = time.perf_counter()
        ref = gensim_port(emb, part)
        loop = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    got = (sum(s.correct for s in mine.sections), sum(s.incorrect for s in mine.sections), mine.n_oov)
    print(
        f"  subset of {len(part)} (every {stride}th): circuitscope {ours_part:.2f} s, "
        f"per-question loop {loop:.2f} s ({load()}); counts {got} vs loop {ref}",
        flush=True,
    )
    if got != ref:
        raise SystemExit(f"MISMATCH on the subset: circuitscope {got} vs the per-question loop {ref}")
    loop_full = loop * len(questions) / len(part)
    print(f"  per-question loop extrapolated to all questions: {loop_full:.1f} s -> ratio {loop_full / ours:.1f}x")
    print(
        f"  accuracy overall {full.overall_accuracy:.4f}, semantic {full.semantic_accuracy:.4f}, "
        f"syntactic {full.syntactic_accuracy:.4f}; evaluated {len(questions) - full.n_oov}, OOV {full.n_oov}"
    )
    return {
        "embeddings": emb.name,
        "seconds_all_questions": ours,
        "loop_seconds_extrapolated": loop_full,
        "ratio": loop_full / ours,
        "subset_questions": len(part),
        "overall_accuracy": full.overall_accuracy,
        "load_after": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cold-runs", type=int, default=3, help="Warm-cache cold-process runs (0: no cold runs).")
    parser.add_argument("--before", default=BEFORE, help="The git revision timed as 'before'.")
    parser.add_argument("--repeats", type=int, default=2, help="In-process load and thread comparisons.")
    parser.add_argument("--stride", type=int, default=20, help="The loop runs on every N-th question.")
    parser.add_argument("--skip-gemma", action="store_true")
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}; {load()}")
    rows: dict[str, object] = {}
    if args.cold_runs > 0:
        rows["cold"] = cold(args.before, args.cold_runs)
    questions = load_google_analogies()
    glove = in_process(questions, args.repeats)
    rows["glove"] = bench(glove, questions, args.stride)
    if not args.skip_gemma:
        import circuitscope as cs

        model = cs.load_model(cs.DEFAULT_MODEL)
        rows["gemma"] = bench(model_embeddings(model, "W_E", "leading"), questions, args.stride)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
