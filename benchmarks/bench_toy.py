"""Grokking speed: time to generalise (test loss < 0.1) for the default and the paper configuration.

Also measures, side by side in one process, the training step of the paper configuration three
ways: the full forward (all positions), ``forward(last_only=True)`` and the grokking lab's
``fast_last_logits`` (per-token key/value tables), and prints their ratios.

    python benchmarks/bench_toy.py --config default            # about a minute or two on a free 2-core CPU
    python benchmarks/bench_toy.py --config paper --threads 1  # long: run it in the background

The CPU may be shared: the script prints the load average next to every timing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

import torch

from circuitscope.toy.grokking import ModularAddition, fast_last_logits
from circuitscope.toy.grokking_lab import GrokkingConfig, build_grokking_model, run_grokking


def step_ratios(repeats: int) -> dict[str, float]:
    cfg = GrokkingConfig.preset("paper")
    task = ModularAddition(cfg.p, cfg.train_fraction, 0)
    x, y = task.inputs()[task.train_mask()], task.labels()[task.train_mask()]
    model = build_grokking_model(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1.0, betas=(0.9, 0.98), fused=True)
    ways = {
        "full_forward": lambda: model(x).logits[:, -1],
        "last_only": lambda: model(x, last_only=True).logits[:, -1],
        "fast_tables": lambda: fast_last_logits(model, x),
    }
    times = dict.fromkeys(ways, 0.0)
    for _ in range(repeats):  # interleaved, so load changes hit every variant alike
        for name, fn in ways.items():
            start = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(fn(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            times[name] += (time.perf_counter() - start) / repeats
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", choices=["default", "paper", "ratios"], default="default")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()
    if args.config == "ratios":
        times = step_ratios(args.repeats)
        base = times["full_forward"]
        print(
            json.dumps(
                {
                    "seconds_per_step": times,
                    "speedup_vs_full": {k: base / v for k, v in times.items()},
                    "loadavg": load,
                },
                indent=1,
            )
        )
        return
    cfg = GrokkingConfig.preset(args.config)
    cfg = GrokkingConfig(**{**cfg.__dict__, "stop_when_generalised": True})
    folder = tempfile.mkdtemp(prefix="bench-grok-")
    try:
        start = time.perf_counter()
        result = run_grokking(cfg, folder, threads=args.threads)
        total = time.perf_counter() - start
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    g = result.generalised_step
    print(
        json.dumps(
            {
                "config": args.config,
                "generalised_step": g,
                "seconds_to_generalise": result.seconds[result.steps.index(g)] if g is not None else None,
                "total_seconds_with_analysis": total,
                "final_test_loss": result.test_loss[-1],
                "threads": torch.get_num_threads(),
                "loadavg_at_start": load,
                "loadavg_at_end": os.getloadavg(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
