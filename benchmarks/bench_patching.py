"""Head-output and residual-stream activation patching on IOI with Gemma-3-270M: batched vs naive vs TransformerLens.

Same prompts, same metric (mean logit difference at the answer position), measured in one
run, each as a ratio to circuitscope's batched patching. Attribution patching of every head
is timed as a multiple of one forward pass of the same prompts.

    python benchmarks/bench_patching.py [--prompts 8] [--repeats 2] [--tl-python .venv-bench/bin/python] [--json]

TransformerLens runs in its own interpreter (see RESULTS.md for the .venv-bench set-up), which
times its ``get_act_patch_attn_head_out_all_pos`` and ``get_act_patch_resid_pre`` next to its own plain
forward; the script prints the wall-time ratio and the ratio in forward-pass units; it
reports TL's time relative to that forward and circuitscope's relative to its own forward,
so the two ratios are comparable even though they come from two processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing_common import measure, summarize

import circuitscope as cs
from circuitscope.analysis.attribution import attribution_patching
from circuitscope.analysis.patching import PatchTarget, activation_patching, naive_activation_patching
from circuitscope.core.loading import cache_home
from circuitscope.tasks import IOIConfig, ioi_task

TARGETS: tuple[PatchTarget, ...] = ("head_out", "resid_pre")
TL_NAMES = {"head_out": "get_act_patch_attn_head_out_all_pos", "resid_pre": "get_act_patch_resid_pre"}
NAIVE_LAYERS: dict[str, list[int] | None] = {"head_out": [0, 8, 17], "resid_pre": [0, 8, 17]}
"""The naive loop checks equality on three layers (one full forward pass per patch: it would dominate the run;
the tests check every layer of every family); it is timed for heads only, unless --no-naive-timing."""


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--tl-python", default=None, help="interpreter with transformer-lens (optional)")
    ap.add_argument("--no-naive-timing", action="store_true", help="check equality with the naive loop, untimed")
    ap.add_argument("--resid-layers", default="", help="resid_pre on these layers only, both sides (default: all)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    resid_layers = [int(x) for x in args.resid_layers.split(",") if x] or None
    layers_of: dict[str, list[int] | None] = {"head_out": None, "resid_pre": resid_layers}
    load_start = [round(x, 2) for x in os.getloadavg()]

    model = cs.load_model(cs.DEFAULT_MODEL)
    task = ioi_task(model, IOIConfig(n_prompts=args.prompts, templates="one"))
    rows = torch.arange(len(task))

    def forward() -> object:
        with torch.no_grad():
            return model(task.corrupted_tokens)[rows, task.answer_pos]

    agreement = {}
    for target in TARGETS:
        only = NAIVE_LAYERS[target]
        fast = activation_patching(model, task, target, layers=only)
        slow = naive_activation_patching(model, task, target, layers=only)
        agreement[target] = float((fast.raw - slow.raw).abs().max())
    variants = [("forward", forward)]

    def batched(target: PatchTarget) -> Callable[[], object]:
        return lambda: activation_patching(model, task, target, layers=layers_of[target])

    variants += [(t, batched(t)) for t in TARGETS]
    if not args.no_naive_timing:
        variants.append(("naive head_out", lambda: naive_activation_patching(model, task, "head_out")))
    variants.append(("attribution", lambda: attribution_patching(model, task, ["head_out"])))
    samples = measure(variants, repeats=args.repeats, warmup=args.warmup)
    rows_out = summarize(samples, baseline="forward")
    result: dict[str, Any] = {
        "prompts": len(task),
        "seq_len": task.seq_len,
        "max_abs_diff_batched_vs_naive": agreement,
        "naive_layers": NAIVE_LAYERS,
        "timed_layers": layers_of,
        "rows": rows_out,
        "loadavg_start": load_start,
    }
    if args.tl_python:
        result["transformer_lens"] = _transformer_lens(args, task)
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(result, indent=2))
        return
    _print(result, task)


def _transformer_lens(args: argparse.Namespace, task: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        spec = {
            "clean": task.clean_tokens.tolist(),
            "corrupted": task.corrupted_tokens.tolist(),
            "answer_pos": task.answer_pos.tolist(),
            "correct": task.correct.tolist(),
            "incorrect": task.incorrect.tolist(),
        }
        (Path(tmp) / "task.json").write_text(json.dumps(spec))
        out = Path(tmp) / "tl.json"
        subprocess.run(
            [
                args.tl_python, str(Path(__file__).with_name("tl_patching_worker.py")),
                "--folder", str(cache_home() / "models" / cs.DEFAULT_MODEL),
                "--task", str(Path(tmp) / "task.json"), "--repeats", str(args.repeats),
                "--warmup", str(args.warmup), "--targets", ",".join(TARGETS), "--out", str(out),
                "--resid-layers", args.resid_layers,
            ],
            check=True,
            stdout=sys.stderr,  # TransformerLens prints to stdout; keep --json output clean
        )  # fmt: skip
        return json.loads(out.read_text())


def _print(result: dict[str, Any], task: Any) -> None:
    by = {r["name"]: r for r in result["rows"]}
    print(f"IOI activation patching, Gemma-3-270M, {len(task)} prompts x {task.seq_len} tokens, 18 layers x 4 heads")
    print(f"load average {result['loadavg_start']} -> {result['loadavg_end']}; layers timed: {result['timed_layers']}")
    for target, diff in result["max_abs_diff_batched_vs_naive"].items():
        print(
            f"  {target}: batched vs naive loop (layers {NAIVE_LAYERS[target] or 'all'}): max |difference| {diff:.2e}"
        )
    for name, r in by.items():
        print(f"  {name:16s} median {r['median_s']:8.2f}s  = {r['ratio']:7.2f}x forward (cpu {r['ratio_cpu']:.2f}x)")
    if "naive head_out" in by:
        print(f"  naive / batched head_out: {by['naive head_out']['median_s'] / by['head_out']['median_s']:.2f}x")
    tl = result.get("transformer_lens")
    if tl:
        tl_by = {r["name"]: r for r in tl["rows"]}
        print(f"  TransformerLens forward median {tl_by['forward']['median_s']:.2f}s")
        for target in TARGETS:
            t = tl_by[target]
            wall = t["median_s"] / by[target]["median_s"]
            units = t["ratio"] / by[target]["ratio"]
            print(
                f"  {target}: TransformerLens {TL_NAMES[target]} {t['median_s']:.2f}s = {t['ratio']:.2f}x its forward; "
                f"circuitscope {wall:.2f}x faster in wall time, {units:.2f}x in forward-pass units (target >= 20x wall)"
            )


if __name__ == "__main__":
    main()
