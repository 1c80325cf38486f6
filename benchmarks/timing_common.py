"""Timing helpers shared by bench_hooks.py and tl_worker.py (stdlib + torch only).

tl_worker.py runs under another interpreter (a venv with transformer-lens), so this
module must not import circuitscope.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

Variant = tuple[str, Callable[[], object]]
Sample = tuple[float, float]  # (wall seconds, process CPU seconds)


def measure(variants: Sequence[Variant], repeats: int, warmup: int = 1, log: bool = True) -> dict[str, list[Sample]]:
    """Wall-clock and process CPU seconds of each variant, ``repeats`` times, interleaved round-robin.

    Every round runs every variant once; the starting variant rotates from round to round
    so no variant always follows the same neighbour. Outputs are dropped (and garbage
    collected) outside the timed region. CPU time (all threads of this process) is kept
    because on a shared machine wall time also measures the other processes.
    """
    for _ in range(warmup):
        for _name, fn in variants:
            out = fn()
            del out
            gc.collect()
    samples: dict[str, list[Sample]] = {name: [] for name, _ in variants}
    n = len(variants)
    for r in range(repeats):
        order = [*variants[r % n :], *variants[: r % n]]
        for name, fn in order:
            gc.collect()
            c0, t0 = time.process_time(), time.perf_counter()
            out = fn()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            del out
            samples[name].append((wall, cpu))
        if log:
            done = ", ".join(f"{k} {v[-1][0]:.2f}s" for k, v in samples.items())
            print(f"  round {r + 1}/{repeats}: {done}", file=sys.stderr, flush=True)
    return samples


def summarize(samples: dict[str, list[Sample]], baseline: str) -> list[dict[str, Any]]:
    """One row per variant: median/min wall and median CPU seconds, each as a ratio to ``baseline``.

    ``ratio_paired`` is the median over rounds of (this variant / baseline in the same round),
    which cancels load that drifts slowly between rounds.
    """
    med = statistics.median

    def stats(rows: list[Sample]) -> tuple[float, float, float]:
        return med(w for w, _ in rows), min(w for w, _ in rows), med(c for _, c in rows)

    b_med, b_min, b_cpu = stats(samples[baseline])
    out = []
    for name, rows in samples.items():
        w_med, w_min, c_med = stats(rows)
        paired = med(w / b for (w, _), (b, _) in zip(rows, samples[baseline], strict=True))
        out.append(
            {
                "name": name,
                "median_s": round(w_med, 4),
                "min_s": round(w_min, 4),
                "cpu_s": round(c_med, 4),
                "ratio": round(w_med / b_med, 4),
                "ratio_min": round(w_min / b_min, 4),
                "ratio_paired": round(paired, 4),
                "ratio_cpu": round(c_med / b_cpu, 4),
                "wall_s": [round(w, 4) for w, _ in rows],
                "process_cpu_s": [round(c, 4) for _, c in rows],
            }
        )
    return out


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def format_table(rows: list[dict[str, Any]], targets: dict[str, str] | None = None) -> str:
    """Ratios to the baseline: of median wall times, of minimum wall times, median per-round ratio, of CPU times."""
    targets = targets or {}
    width = max(len(r["name"]) for r in rows)
    cols = f"{'median s':>8}  {'ratio':>6}  {'min-ratio':>9}  {'paired':>7}  {'cpu-ratio':>9}  target"
    head = f"{'variant':<{width}}  {cols}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['name']:<{width}}  {r['median_s']:>8.2f}  {r['ratio']:>5.3f}x  {r['ratio_min']:>8.3f}x"
            f"  {r['ratio_paired']:>6.3f}x  {r['ratio_cpu']:>8.3f}x  {targets.get(r['name'], '')}"
        )
    return "\n".join(lines)
