"""Head-output activation patching on IOI with Gemma-3-270M: batched vs the naive loop vs TransformerLens.

Same prompts, same metric (mean logit difference at the answer position), measured in one
run, each as a ratio to circuitscope's batched patching. Attribution patching of every head
is timed as a multiple of one forward pass of the same prompts.

    python benchmarks/bench_patching.py [--prompts 8] [--repeats 2] [--tl-python .venv-bench/bin/python] [--json]

TransformerLens runs in its own interpreter (see RESULTS.md for the .venv-bench set-up), which
times its ``get_act_patch_attn_head_out_all_pos`` next to its own plain forward; the script
reports TL's time relative to that forward and circuitscope's relative to its own forward,
so the two ratios are comparable even though they come from two processes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing_common import measure, summarize

import circuitscope as cs
from circuitscope.analysis.attribution import attribution_patching
from circuitscope.analysis.patching import activation_patching, naive_activation_patching
from circuitscope.core.loading import cache_home
from circuitscope.tasks import IOIConfig, ioi_task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--tl-python", default=None, help="interpreter with transformer-lens (optional)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    model = cs.load_model(cs.DEFAULT_MODEL)
    task = ioi_task(model, IOIConfig(n_prompts=args.prompts, templates="one"))
    rows = torch.arange(len(task))

    def forward() -> object:
        with torch.no_grad():
            return model(task.corrupted_tokens)[rows, task.answer_pos]

    fast = activation_patching(model, task, "head_out")
    slow = naive_activation_patching(model, task, "head_out")
    agreement = float((fast.raw - slow.raw).abs().max())
    samples = measure(
        [
            ("forward", forward),
            ("batched", lambda: activation_patching(model, task, "head_out")),
            ("naive", lambda: naive_activation_patching(model, task, "head_out")),
            ("attribution", lambda: attribution_patching(model, task, ["head_out"])),
        ],
        repeats=args.repeats,
    )
    rows_out = summarize(samples, baseline="forward")
    result = {
        "prompts": len(task),
        "seq_len": task.seq_len,
        "max_abs_diff_batched_vs_naive": agreement,
        "rows": rows_out,
    }
    if args.tl_python:
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
                    "--task", str(Path(tmp) / "task.json"), "--repeats", str(args.repeats), "--out", str(out),
                ],
                check=True,
                stdout=sys.stderr,  # TransformerLens prints to stdout; keep --json output clean
            )  # fmt: skip
            result["transformer_lens"] = json.loads(out.read_text())
    if args.json:
        print(json.dumps(result, indent=2))
        return
    by = {r["name"]: r for r in rows_out}
    print(f"IOI head-output patching, Gemma-3-270M, {len(task)} prompts x {task.seq_len} tokens, 18x4 heads")
    print(f"batched vs naive: max |difference| {agreement:.2e}")
    for name in ("forward", "batched", "naive", "attribution"):
        r = by[name]
        print(f"  {name:12s} median {r['median_s']:8.2f}s  = {r['ratio']:6.2f}x forward (cpu {r['ratio_cpu']:.2f}x)")
    print(f"  naive / batched: {by['naive']['median_s'] / by['batched']['median_s']:.2f}x")
    if "transformer_lens" in result:
        tl = result["transformer_lens"]
        speedup = tl["patching_over_forward"] / by["batched"]["ratio"]
        print(f"  TransformerLens get_act_patch_attn_head_out_all_pos: {tl['patching_over_forward']:.2f}x its forward")
        print(f"  circuitscope batched is {speedup:.2f}x faster than TransformerLens (in forward-pass units)")


if __name__ == "__main__":
    main()
