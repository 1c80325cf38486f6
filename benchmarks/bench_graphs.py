"""Attribution-graph benchmark: one graph of a 12-16 token prompt on Gemma-3-270M, against the issue's targets.

For a prompt of 12-16 tokens (default: 14 with BOS) and a transcoder set on all 18 layers (``--transcoders DIR``,
or per-layer TopK transcoders of the default size, ``k`` = 32 and 4 x d_model features, trained here for
``--train-tokens`` tokens: the count of active features, what the time depends on, is exactly ``k`` per layer
and position either way), it prints:

1. the whole graph: seconds (target <= 60 s), backward batches and the time per batch, peak memory (the
   process's maximum resident set, target <= 4 GB), node and edge counts before and after pruning, the
   replacement and completeness scores;
2. side by side in one run, graphs of the prompt's first ``--short-tokens`` tokens at two batch sizes
   (``--batch-sizes``): backward seconds per target at each and their ratio (what batching saves).

    .venv/bin/python benchmarks/bench_graphs.py --train-tokens 4096

Results go to stdout as JSON with ``uptime`` next to each timing; see RESULTS_graphs.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from typing import Any

PROMPT = "The capital of the state containing Dallas is the city of"


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def _transcoders(model: Any, args: argparse.Namespace) -> Any:
    from circuitscope.progress import SILENT
    from circuitscope.sae import default_corpus
    from circuitscope.transcoders.io import load_transcoders
    from circuitscope.transcoders.train import train_transcoders
    from circuitscope.transcoders.train_config import TranscoderTrainConfig

    if args.transcoders:
        return load_transcoders(args.transcoders, model)
    cfg = TranscoderTrainConfig(k=args.k, tokens=args.train_tokens, context_size=64, batch_contexts=8)
    return train_transcoders(model, cfg, default_corpus(), on_progress=SILENT).transcoders


def main() -> None:
    parser = argparse.ArgumentParser(description="Attribution-graph benchmark on Gemma-3-270M.")
    parser.add_argument("--transcoders", default=None, help="A transcoder folder (default: train a short run).")
    parser.add_argument("--train-tokens", type=int, default=4096)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batch-sizes", default="4,32", help="Two batch sizes timed side by side.")
    parser.add_argument("--short-tokens", type=int, default=3, help="Prompt tokens of the side-by-side timing.")
    args = parser.parse_args()

    import torch

    import circuitscope as cs
    from circuitscope.graphs import GraphConfig, attribution_graph, graph_scores, prune_graph
    from circuitscope.progress import SILENT

    model = cs.load_model(cs.DEFAULT_MODEL)
    tc = _transcoders(model, args)
    out: dict[str, Any] = {"prompt": args.prompt, "transcoders": repr(tc), "threads": torch.get_num_threads()}
    out["uptime_before"] = _uptime()
    graph = attribution_graph(model, tc, args.prompt, GraphConfig(batch_size=args.batch_size), on_progress=SILENT)
    out["uptime_after_graph"] = _uptime()
    pruned = prune_graph(graph)
    stats = graph.stats
    assert stats is not None
    out["graph"] = {
        "tokens": len(graph.tokens),
        "seconds": stats.seconds,
        "seconds_forward": stats.seconds_forward,
        "backward_batches": stats.backward_batches,
        "seconds_per_batch": stats.seconds_per_batch,
        "batch_size": args.batch_size,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "nodes": len(graph.nodes),
        "features": graph.n_features,
        "edges": int((graph.adjacency != 0).sum()),
        "nodes_kept": int(pruned.node_mask.sum()),
        "edges_kept": int((pruned.edge_mask & (graph.adjacency != 0)).sum()),
        **graph_scores(graph).to_json(),
    }

    # the backward passes at two batch sizes, side by side, on the prompt's first tokens (the same targets)
    short = model.to_tokens(args.prompt)[0][: args.short_tokens]
    timing: dict[str, Any] = {"tokens": len(short)}
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    for size in sizes:
        small = attribution_graph(model, tc, short, GraphConfig(batch_size=size), on_progress=SILENT)
        assert small.stats is not None
        timing[f"seconds_per_target_batch_{size}"] = small.stats.seconds_per_batch / size
        timing[f"uptime_batch_{size}"] = _uptime()
    timing["ratio"] = timing[f"seconds_per_target_batch_{sizes[0]}"] / timing[f"seconds_per_target_batch_{sizes[1]}"]
    out["batching"] = timing
    out["uptime_after"] = _uptime()
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
