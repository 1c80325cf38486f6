"""Grokking speed: time to generalise (test loss < 0.1) for the default and the paper configuration.

Also measures, side by side in one process, the training step of the paper configuration three
ways: the full forward (all positions), ``forward(last_only=True)`` and the grokking lab's
``fast_last_logits`` (per-token key/value tables), and prints their ratios.

    python benchmarks/bench_toy.py --config default            # about a minute or two on a free 2-core CPU
    python benchmarks/bench_toy.py --config paper --threads 1  # long: run it in the background

The grokking training step, HEAD's loss (autograd through ``fast_last_logits``) beside the working tree's
``fast_last_loss`` (closed-form gradients, a block of rows at a time), on 1 and 2 threads
(``--config grokking-steps --repeats 10``).

Superposition (``--config superposition``): seconds per training step of each experiment of
``circuitscope lab superposition`` at the paper's settings (batch 1024), the code of the last commit
(``git show HEAD:src/circuitscope/toy/superposition.py``, imported from a temporary copy) beside the
working tree's, interleaved in one process, with the new code's share of time spent sampling and the
projected 10,000-step totals:

    python benchmarks/bench_toy.py --config superposition --steps 200

The CPU may be shared: the script prints the load average next to every timing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from circuitscope.toy.grokking import ModularAddition, fast_last_logits
from circuitscope.toy.grokking_lab import GrokkingConfig, build_grokking_model, run_grokking
from circuitscope.toy.grokking_step import fast_last_loss


def _paper_training() -> tuple[torch.Tensor, torch.Tensor, Any, torch.optim.Optimizer]:
    """The paper configuration's full training batch, a fresh model in training mode and its AdamW."""
    cfg = GrokkingConfig.preset("paper")
    task = ModularAddition(cfg.p, cfg.train_fraction, 0)
    x, y = task.inputs()[task.train_mask()], task.labels()[task.train_mask()]
    model = build_grokking_model(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1.0, betas=(0.9, 0.98), fused=True)
    return x, y, model, opt


def step_ratios(repeats: int) -> dict[str, float]:
    x, y, model, opt = _paper_training()
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


def _old_module(name: str) -> ModuleType:
    """The committed (HEAD) ``circuitscope.toy.<name>`` module, imported from a temporary copy."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "show", f"HEAD:src/circuitscope/toy/{name}.py"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="bench-toy-")) / f"old_{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"old_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def grokking_old_new(repeats: int) -> dict[str, object]:
    """Seconds per full-batch training step of the paper configuration: HEAD's loss (cross-entropy of its
    ``fast_last_logits``, through autograd) beside the working tree's ``fast_last_loss``, interleaved."""
    old = _old_module("grokking")
    x, y, model, opt = _paper_training()
    losses = {
        "old": lambda: torch.nn.functional.cross_entropy(old.fast_last_logits(model, x), y),
        "new": lambda: fast_last_loss(model, x, y),
    }
    times: dict[str, float] = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for _ in range(repeats):  # interleaved, so load changes hit both alike
            for label, loss_fn in losses.items():
                start = time.perf_counter()
                loss = loss_fn()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                key = f"{label}, {threads} thread(s)"
                times[key] = times.get(key, 0.0) + (time.perf_counter() - start) / repeats
    return {
        "seconds_per_step": times,
        "speedup_1_thread": times["old, 1 thread(s)"] / times["new, 1 thread(s)"],
        "speedup_2_threads": times["old, 2 thread(s)"] / times["new, 2 thread(s)"],
    }


def _superposition_experiments() -> dict[str, tuple[int, int, torch.Tensor, torch.Tensor]]:
    """(n_features, n_hidden, importance, probability) of the lab's four experiments, as the lab builds them."""
    sparsities = torch.tensor([0.0, 0.7, 0.9, 0.97, 0.99, 0.999])
    inverse = torch.logspace(0, math.log10(20), 20)
    density = torch.logspace(-2, 0, 9)
    return {
        "5->2": (5, 2, (0.9 ** torch.arange(5.0))[None].expand(6, -1), (1 - sparsities)[:, None].expand(-1, 5)),
        "20->5": (20, 5, (0.7 ** torch.arange(20.0))[None].expand(6, -1), (1 - sparsities)[:, None].expand(-1, 20)),
        "200->20": (200, 20, torch.ones(20, 200), (1 / inverse)[:, None].expand(-1, 200)),
        "2->1": (
            2,
            1,
            torch.stack([torch.ones(81), torch.logspace(-1, 1, 9).repeat_interleave(9)], dim=1),
            density.repeat(9)[:, None].expand(-1, 2),
        ),
    }


def superposition_steps(steps: int, threads: int | None) -> dict[str, object]:
    """Seconds per step, old (HEAD) beside new, per experiment; both trained ``steps`` steps, alternating.

    The new code's seconds per step are its training loop's (``run.time.seconds``); the time it spent
    before, measuring 1 against 2 threads when ``threads`` is None, is printed apart (``new_choose_seconds``).
    """
    from circuitscope.toy import superposition as new

    old = _old_module("superposition")
    rows: dict[str, dict[str, float]] = {}
    for name, (n, m, importance, probability) in _superposition_experiments().items():
        imp, prob = importance.contiguous(), probability.contiguous()
        row = {"new_sampling_share": 0.0, "new_choose_seconds": 0.0}
        for label in ("old", "new", "old", "new"):  # twice each, alternating: load drifts hit both
            start = time.perf_counter()
            if label == "old":
                old.train_superposition(n, m, imp, prob, old.TrainingOptions(steps=steps, threads=threads))
                spent = time.perf_counter() - start
            else:
                run = new.train_superposition(n, m, imp, prob, new.TrainingOptions(steps=steps, threads=threads))
                spent = run.time.seconds
                row["new_choose_seconds"] += (time.perf_counter() - start - spent) / 2
                row["new_sampling_share"] += run.time.sampling_share / 2
                row["new_threads"] = run.time.threads
            row[label] = row.get(label, 0.0) + spent / (2 * steps)
        row["speedup"] = row["old"] / row["new"]
        rows[name] = row
        print(f"  {name}: {row}", file=sys.stderr, flush=True)
    total = {k: sum(r[k] for r in rows.values()) * 10_000 for k in ("old", "new")}
    return {
        "seconds_per_step": rows,
        "projected_seconds_10k_steps_each": total,
        "steps_timed": steps,
        "threads_new": threads if threads is not None else "measured (choose_threads)",
        "threads_old": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--config", choices=["default", "paper", "ratios", "superposition", "grokking-steps"], default="default"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200, help="superposition: steps timed per experiment and variant")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()
    if args.config == "superposition":
        result = superposition_steps(args.steps, args.threads)
        uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        print(json.dumps({**result, "loadavg_at_start": load, "uptime_at_end": uptime}, indent=1))
        return
    if args.config == "grokking-steps":
        result = grokking_old_new(args.repeats)
        uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        print(json.dumps({**result, "loadavg_at_start": load, "uptime_at_end": uptime}, indent=1))
        return
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
