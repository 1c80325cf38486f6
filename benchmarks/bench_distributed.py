"""1 rank vs 2 ranks on this machine: head-ablation scan, EAP (and patching) on the embedded Gemma-3-270M.

Each configuration is one ``torchrun`` launch of this script (``--worker``) on the IOI task: every
rank loads the model and runs one forward pass (not timed), then each job runs once, timed between
two gathers (barriers), so the wall time is the slowest rank's. Jobs: ``scan`` (head_ablation_scan,
mean ablation), ``eap`` (batches of 2 prompts), ``patching`` (activation_patching of every head's
output), ``tracing`` (trace_facts on the first 4 shipped facts, 2 noise samples). Configurations,
side by side in one run:

- 1 rank, 2 torch threads (one process using both cores: what a user runs without torchrun);
- 1 rank, 1 thread (the per-rank baseline);
- 2 ranks, 1 thread each (both cores, the work split).

Printed per job: wall time of each configuration, the ratios, the CPU time of each rank, and the
maximum absolute difference of the 2-rank result from the 1-rank results: 0 from 1 rank on 1 thread
(the same kernels), float32 rounding from 1 rank on 2 threads (kernels split their sums differently).
The load average (``uptime``) is printed next to every timing: on a 2-core CPU shared with other
work the speed-up of 2 ranks is bounded by the cores actually free.

    .venv/bin/python benchmarks/bench_distributed.py [--prompts 4] [--jobs scan,eap,patching,tracing]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

JOBS = ("scan", "eap", "patching", "tracing")


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def _job(name: str) -> Callable[[Any, Any], torch.Tensor]:
    from circuitscope.analysis import activation_patching, head_ablation_scan
    from circuitscope.analysis.tracing_facts import trace_facts
    from circuitscope.circuits import eap
    from circuitscope.progress import SILENT
    from circuitscope.tasks import load_facts

    if name == "scan":
        return lambda model, task: head_ablation_scan(model, task, "mean", batch_size=64, on_progress=SILENT).raw
    if name == "eap":
        return lambda model, task: eap(model, task, batch_size=2, on_progress=SILENT).scores
    if name == "patching":
        return lambda model, task: (
            activation_patching(model, task, "head_out", batch_size=64, on_progress=SILENT).scores
        )
    if name == "tracing":
        return lambda model, _task: trace_facts(model, load_facts()[:4], n_samples=2, on_progress=SILENT).last_effect
    raise SystemExit(f"unknown job {name!r}; choose from {', '.join(JOBS)}")


def worker(prompts: int, jobs: list[str]) -> None:
    """One rank: load, warm up, time each job; rank 0 prints one JSON line."""
    from circuitscope.core.loading import load_model
    from circuitscope.engine.distributed import all_gather, process_group
    from circuitscope.tasks import IOIConfig, ioi_task

    with process_group() as world:
        model = load_model("gemma-3-270m")
        task = ioi_task(model, IOIConfig(n_prompts=prompts))
        with torch.no_grad():
            model(task.clean_tokens)  # warm-up: the allocator and the kernels' one-off costs
        out: dict[str, Any] = {"size": world.size, "threads": torch.get_num_threads(), "jobs": {}}
        for name in jobs:
            run = _job(name)
            all_gather(None, world)
            t0, c0 = time.perf_counter(), time.process_time()
            result = run(model, task)
            cpu = time.process_time() - c0
            all_gather(None, world)
            wall = time.perf_counter() - t0
            out["jobs"][name] = {"wall": wall, "cpu_per_rank": all_gather(cpu, world), "result": result.tolist()}
        if world.is_main:
            print(json.dumps(out), flush=True)


def _launch(ranks: int, threads: int, prompts: int, jobs: list[str]) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "CIRCUITSCOPE_NO_PROGRESS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
               __file__, "--worker", "--prompts", str(prompts), "--jobs", ",".join(jobs)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise SystemExit(f"the {ranks}-rank launch failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _max_diff(a: list[Any], b: list[Any]) -> float:
    x, y = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    both = ~(x.isnan() & y.isnan())
    return float((x - y)[both].abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=4, help="IOI prompt pairs")
    parser.add_argument("--jobs", default="scan,eap", help=f"comma-separated, from {', '.join(JOBS)}")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    jobs = [j for j in args.jobs.split(",") if j]
    if args.worker:
        worker(args.prompts, jobs)
        return
    configs = [(1, 2), (1, 1), (2, 1)]
    runs: dict[tuple[int, int], dict[str, Any]] = {}
    for ranks, threads in configs:
        before = _uptime()
        runs[ranks, threads] = _launch(ranks, threads, args.prompts, jobs)
        print(f"{ranks} rank(s) x {threads} thread(s) done; before: {before}; after: {_uptime()}", flush=True)
    print(f"\nGemma-3-270M, IOI, {args.prompts} prompt pairs; torch {torch.__version__}, {os.cpu_count()} CPUs")
    print(
        "| job | 1 rank x 2 threads | 1 rank x 1 thread | 2 ranks x 1 thread | 1x2 / 2x1 | 1x1 / 2x1 "
        "| CPU s per rank (2 ranks) | CPU s (1x1) | max abs diff 2x1 vs 1x1 | max abs diff 2x1 vs 1x2 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in jobs:
        j = {c: runs[c]["jobs"][name] for c in configs}
        w = {c: j[c]["wall"] for c in configs}
        cpu2 = ", ".join(f"{c:.1f}" for c in j[2, 1]["cpu_per_rank"])
        diff = _max_diff(j[2, 1]["result"], j[1, 1]["result"])
        threads = _max_diff(j[2, 1]["result"], j[1, 2]["result"])
        cpu1 = j[1, 1]["cpu_per_rank"][0]
        print(f"| {name} | {w[1, 2]:.1f} s | {w[1, 1]:.1f} s | {w[2, 1]:.1f} s | {w[1, 2] / w[2, 1]:.2f} "
              f"| {w[1, 1] / w[2, 1]:.2f} | {cpu2} | {cpu1:.1f} | {diff:.3g} | {threads:.3g} |")  # fmt: skip
    print(f"\nuptime at the end: {_uptime()}")


if __name__ == "__main__":
    main()
