"""Attribution-graph benchmark: one graph of a 12-16 token prompt on Gemma-3-270M, against the issue's targets.

For a prompt of 12-16 tokens (default: 12 with BOS) and a transcoder set on all 18 layers (``--transcoders DIR``,
or per-layer TopK transcoders of the default size, ``k`` = 32 and 4 x d_model features, trained here for
``--train-tokens`` tokens and saved to a temporary folder: the count of active features, what the time depends
on, is exactly ``k`` per layer and position either way), it builds the graph in separate processes (so that
their peak memory is the graph's, with the model and the transcoders loaded, not the training's), in this
order: the graph with the feature cap (``--max-feature-nodes``, default GraphConfig's); then, side by side on the
prompt's first ``--compare-tokens`` tokens (0: all of it), with the cap ``--compare-cap``, without a cap (every
active feature's row) and with the cap again. Each prints:

- seconds (target <= 60 s), the forward passes, backward batches and the time per batch, the time of the
  influence estimates, the peak memory (the process's maximum resident set, target <= 4 GB) and the resident
  set before the graph (the model and the transcoders), node and edge counts before and after pruning, the
  replacement and completeness scores; ``uptime`` before and after.

Then the ratio of the uncapped graph's seconds to the mean of the two capped ones beside it (measured side by
side, so that the speed-up means something on a shared machine). ``--batching`` adds the old side-by-side timing of
two batch sizes on the prompt's first ``--short-tokens`` tokens.

    .venv/bin/python benchmarks/bench_graphs.py --train-tokens 4096

Results go to stdout as JSON with ``uptime`` next to each timing; see RESULTS_graphs.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

PROMPT = "The capital of the state containing Dallas is the city of"


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _train(model: Any, args: argparse.Namespace, folder: Path) -> None:
    from circuitscope.progress import SILENT
    from circuitscope.sae import default_corpus
    from circuitscope.transcoders.io import save_transcoders
    from circuitscope.transcoders.train import train_transcoders
    from circuitscope.transcoders.train_config import TranscoderTrainConfig

    cfg = TranscoderTrainConfig(k=args.k, tokens=args.train_tokens, context_size=64, batch_contexts=8)
    save_transcoders(train_transcoders(model, cfg, default_corpus(), on_progress=SILENT).transcoders, folder)


def _one_graph(args: argparse.Namespace) -> dict[str, Any]:
    """In this process: load the model and the transcoders, build one graph, report it."""
    import circuitscope as cs
    from circuitscope.graphs import GraphConfig, attribution_graph, graph_counts, graph_scores, prune_graph
    from circuitscope.progress import SILENT
    from circuitscope.transcoders.io import load_transcoders

    model = cs.load_model(cs.DEFAULT_MODEL)
    tc = load_transcoders(args.transcoders, model)
    cap = args.max_feature_nodes or None
    prompt = model.to_tokens(args.prompt)[0][: args.prompt_tokens] if args.prompt_tokens else args.prompt
    out: dict[str, Any] = {"max_feature_nodes": cap, "rss_before_graph_gb": _rss_gb(), "uptime_before": _uptime()}
    config = GraphConfig(batch_size=args.batch_size, max_feature_nodes=cap)
    graph = attribution_graph(model, tc, prompt, config, on_progress=SILENT)
    out["uptime_after"] = _uptime()
    out["peak_rss_gb"] = _rss_gb()
    pruned = prune_graph(graph)
    assert graph.stats is not None
    counts = graph_counts(graph, pruned).to_json()
    return out | graph.stats.to_json() | counts | {"tokens": len(graph.tokens), "batch_size": args.batch_size,
                                                   **graph_scores(graph).to_json()}  # fmt: skip


def _child(args: argparse.Namespace, folder: Path, cap: int, tokens: int = 0) -> dict[str, Any]:
    command = [sys.executable, __file__, "--graph-only", "--transcoders", str(folder), "--prompt", args.prompt,
               "--batch-size", str(args.batch_size), "--max-feature-nodes", str(cap),
               "--prompt-tokens", str(tokens)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def _batching(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Backward seconds per target at two batch sizes, side by side, on the prompt's first tokens."""
    import circuitscope as cs
    from circuitscope.graphs import GraphConfig, attribution_graph
    from circuitscope.progress import SILENT
    from circuitscope.transcoders.io import load_transcoders

    model = cs.load_model(cs.DEFAULT_MODEL)
    tc = load_transcoders(folder, model)
    short = model.to_tokens(args.prompt)[0][: args.short_tokens]
    timing: dict[str, Any] = {"tokens": len(short)}
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    for size in sizes:
        config = GraphConfig(batch_size=size, max_feature_nodes=None)
        small = attribution_graph(model, tc, short, config, on_progress=SILENT)
        assert small.stats is not None
        timing[f"seconds_per_target_batch_{size}"] = small.stats.seconds_per_batch / size
        timing[f"uptime_batch_{size}"] = _uptime()
    timing["ratio"] = timing[f"seconds_per_target_batch_{sizes[0]}"] / timing[f"seconds_per_target_batch_{sizes[1]}"]
    return timing


def main() -> None:
    from circuitscope.graphs.graph import MAX_FEATURE_NODES

    parser = argparse.ArgumentParser(description="Attribution-graph benchmark on Gemma-3-270M.")
    parser.add_argument("--transcoders", default=None, help="A transcoder folder (default: train a short run).")
    parser.add_argument("--train-tokens", type=int, default=4096)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-feature-nodes", type=int, default=MAX_FEATURE_NODES, help="The cap (0: none).")
    parser.add_argument("--graph-only", action="store_true", help="Build one graph in this process (internal).")
    parser.add_argument("--prompt-tokens", type=int, default=0, help="Only the prompt's first tokens (0: all).")
    parser.add_argument("--compare-tokens", type=int, default=0, help="Prompt tokens of the capped-vs-uncapped "
                        "timing (0: all; fewer finish sooner on a busy machine).")  # fmt: skip
    parser.add_argument("--compare-cap", type=int, default=MAX_FEATURE_NODES, help="The cap of that timing.")
    parser.add_argument("--batching", action="store_true", help="Also time two batch sizes side by side.")
    parser.add_argument("--batch-sizes", default="4,32", help="The two batch sizes of --batching.")
    parser.add_argument("--short-tokens", type=int, default=3, help="Prompt tokens of --batching.")
    args = parser.parse_args()
    if args.graph_only:
        json.dump(_one_graph(args), sys.stdout)
        return

    import torch

    out: dict[str, Any] = {"prompt": args.prompt, "threads": torch.get_num_threads(), "uptime_start": _uptime()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.transcoders) if args.transcoders else Path(tmp) / "transcoders"
        if not args.transcoders:
            import circuitscope as cs

            _train(cs.load_model(cs.DEFAULT_MODEL), args, folder)
            out["uptime_trained"] = _uptime()
        out["graph"] = _child(args, folder, args.max_feature_nodes)
        short, cap = args.compare_tokens, args.compare_cap
        runs = [_child(args, folder, c, short) for c in (cap, 0, cap)]
        out["compare_capped"], out["compare_uncapped"], out["compare_capped_again"] = runs
        capped = (runs[0]["seconds"] + runs[2]["seconds"]) / 2
        out["compare_uncapped_over_capped_seconds"] = runs[1]["seconds"] / capped
        if args.batching:
            out["batching"] = _batching(args, folder)
    out["uptime_end"] = _uptime()
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
