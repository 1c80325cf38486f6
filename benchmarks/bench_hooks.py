"""Hook overhead of circuitscope against plain transformers (and TransformerLens, when available).

Times, on one model, batch x seq random token ids (fixed seed), fp32, CPU, under
``torch.inference_mode()``, interleaved round-robin after a warm-up:

- ``hf``: a plain transformers model loaded from the same folder, default attention: the baseline;
- ``cs forward``: circuitscope's forward with no hooks;
- ``cs idle hooks``: a no-op hook on every hook point, with and without ``attn.hook_result``
  (TransformerLens does not compute per-head results by default, so the headline excludes it);
- ``cs run_with_cache``: of every hook point, and of the residual stream only.

Each is reported as median seconds and as a ratio to ``hf`` measured in the same run.
TransformerLens's ``HookedTransformer`` is timed by ``tl_worker.py`` in a subprocess, under
``--tl-python`` (a venv with transformer-lens; see RESULTS.md) or under this interpreter
when it can import transformer_lens, with its own ``hf`` baseline so its ratios sit side by side.

    .venv/bin/python benchmarks/bench_hooks.py --tl-python .venv-bench/bin/python
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM

import circuitscope as cs
from circuitscope.core.loading import cache_home

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing_common import Variant, format_table, machine_info, measure, summarize

HERE = Path(__file__).resolve().parent
RESID = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post")
IDLE_TARGET, CACHE_TARGET = 1.02, 1.10
TL_ISSUE = {"forward": "1.18x", "run_with_cache": "1.31-1.37x"}  # the issue's TransformerLens numbers


def idle(x: torch.Tensor, hook: Any) -> None:
    """A hook that reads nothing and changes nothing."""
    return None


def model_folder(model: str) -> str:
    """The Hugging Face folder behind ``cs.load_model(model)`` (the embedded model's safetensors cache)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path)
    cached = cache_home() / "models" / model
    return str(cached) if (cached / "config.json").is_file() else model


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def bench_circuitscope(
    model: cs.HookedModel, folder: str, ids: torch.Tensor, repeats: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    plain = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    names = model.hook_names
    no_result = [n for n in names if not n.endswith("attn.hook_result")]
    resid = [n for n in names if n.endswith(RESID)]
    every = [(n, idle) for n in names]
    every_no_result = [(n, idle) for n in no_result]

    def with_hooks(hooks: list[tuple[str, Any]]) -> torch.Tensor:
        with model.hooks(hooks):
            return model(ids)

    n_all, n_nr = len(names), len(no_result)
    v = {
        "fwd": "cs forward (no hooks)",
        "idle": f"cs idle hooks, {n_nr} excl. hook_result [headline]",
        "idle_all": f"cs idle hooks, all {n_all}",
        "rwc": f"cs run_with_cache, all {n_all}",
        "rwc_resid": f"cs run_with_cache, resid ({len(resid)})",
    }
    variants: list[Variant] = [
        ("hf", lambda: plain(input_ids=ids, use_cache=False).logits),
        (v["fwd"], lambda: model(ids)),
        (v["idle"], lambda: with_hooks(every_no_result)),
        (v["idle_all"], lambda: with_hooks(every)),
        (v["rwc"], lambda: model.run_with_cache(ids)),
        (v["rwc_resid"], lambda: model.run_with_cache(ids, names=resid)),
    ]
    with torch.inference_mode():
        one = ids[:1]
        ref = plain(input_ids=one, use_cache=False).logits
        diffs = {
            "cs_vs_hf": (model(one) - ref).abs().max().item(),
        }
        with model.hooks(every):
            diffs["idle_all_vs_hf"] = (model(one) - ref).abs().max().item()
        cached, _ = model.run_with_cache(one)  # hook_result active: attention output = the sum of the head results
        diffs["rwc_all_vs_hf"] = (cached - ref).abs().max().item()
        log(f"  attention: hf={plain.config._attn_implementation}, cs={model.hf_model.config._attn_implementation}")
        log(f"  max |logits - hf| on one row: {diffs}")
        log(f"  timing {len(variants)} variants x {repeats} rounds (+1 warm-up round)")
        times = measure(variants, repeats)
    info = {"folder": folder, "n_hooks": n_all, "max_abs_logit_diff": diffs, "variants": v}
    return summarize(times, "hf"), info


def bench_transformer_lens(args: argparse.Namespace, ids: torch.Tensor, folder: str) -> dict[str, Any] | None:
    python = args.tl_python
    if python is None:
        if args.no_tl or importlib.util.find_spec("transformer_lens") is None:
            log("  transformer_lens: not importable here and no --tl-python given; skipped")
            return None
        python = sys.executable
    with tempfile.TemporaryDirectory(prefix="bench-hooks-") as tmp:
        tokens, out = Path(tmp, "ids.json"), Path(tmp, "tl.json")
        tokens.write_text(json.dumps(ids.tolist()))
        cmd = [python, str(HERE / "tl_worker.py"), "--folder", folder, "--tl-name", args.tl_name]
        cmd += ["--tokens", str(tokens), "--repeats", str(args.repeats), "--out", str(out)]
        cmd += ["--threads", str(args.threads)]
        log(f"  running {' '.join(cmd)}")
        proc = subprocess.run(cmd, stdout=sys.stderr, check=False)
        if proc.returncode != 0 or not out.is_file():
            log(f"  transformer_lens worker failed (exit {proc.returncode}); no TransformerLens numbers")
            return {"error": f"worker exit {proc.returncode}", "python": python}
        result: dict[str, Any] = json.loads(out.read_text())
    result["python"] = python
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--model", default=cs.DEFAULT_MODEL, help="name or folder for cs.load_model")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds (each runs every variant once)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--json", action="store_true", help="print JSON on stdout (the table goes to stderr)")
    ap.add_argument("--tl-python", default=None, help="interpreter with transformer-lens for tl_worker.py")
    ap.add_argument("--tl-name", default="google/gemma-3-270m", help="TransformerLens's name for --model")
    ap.add_argument("--no-tl", action="store_true", help="skip TransformerLens even if importable")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    machine = machine_info()
    log(f"circuitscope {cs.__version__}, torch {torch.__version__}, transformers {version('transformers')}")
    model = cs.load_model(args.model)  # converts the embedded model to safetensors once if needed
    gen = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, model.cfg.d_vocab, (args.batch, args.seq), generator=gen)
    rows, info = bench_circuitscope(model, model_folder(args.model), ids, args.repeats)
    del model
    tl = None if args.no_tl else bench_transformer_lens(args, ids, info["folder"])
    machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]

    v = info["variants"]
    targets = {v["idle"]: f"<= {IDLE_TARGET}x", v["idle_all"]: "(info)", v["rwc"]: f"<= {CACHE_TARGET}x"}
    out = sys.stderr if args.json else sys.stdout
    print(f"\n{args.model}, batch {args.batch} x {args.seq} tokens, fp32, CPU, {args.repeats} rounds", file=out)
    print(format_table(rows, targets), file=out)
    if tl is not None and "results" in tl:
        tl_targets = {}
        for r in tl["results"]:
            if r["name"] == "tl forward":
                tl_targets[r["name"]] = f"issue: {TL_ISSUE['forward']}"
            elif r["name"].startswith("tl run_with_cache (all"):
                tl_targets[r["name"]] = f"issue: {TL_ISSUE['run_with_cache']}"
        print(f"\nTransformerLens {tl['transformer_lens']} ({tl['python']}), ratios to its own hf run:", file=out)
        print(format_table(tl["results"], tl_targets), file=out)
    if args.json:
        report = {
            "date": started,
            "command": " ".join(sys.argv),
            "config": {
                "model": args.model,
                "batch": args.batch,
                "seq": args.seq,
                "repeats": args.repeats,
                "seed": args.seed,
                "threads": torch.get_num_threads(),
                "dtype": "float32",
                "device": "cpu",
            },
            "versions": {
                "circuitscope": cs.__version__,
                "torch": torch.__version__,
                "transformers": version("transformers"),
            },
            "machine": machine,
            "targets": {"idle": IDLE_TARGET, "run_with_cache_all": CACHE_TARGET, "tl_issue": TL_ISSUE},
            "circuitscope": {**info, "results": rows},
            "transformer_lens": tl,
        }
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
