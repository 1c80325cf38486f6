"""Transcoder benchmark: the default config on all 18 layers of Gemma-3-270M, timed per token and extrapolated.

1. **Throughput, side by side** (``--rounds`` alternating rounds after one warm-up step): one training
   step of the default config (per-layer TopK, k = 32, 4 x d_model features on every layer, 8
   contexts of 128 tokens) against the model forward alone that the step starts with (the cached
   MLP inputs and outputs, the pass stopping after the last layer). The ratio says how much of a
   step the transcoders cost; tokens per second of the whole step give the default run's time
   (``tokens=500_000``), against the issue's target of 60 minutes.
2. **A short real run** (``--train-tokens``, default 0: skipped) of the default config with that
   many tokens, then evaluated on ``--eval-contexts`` held-out contexts (the end of the shuffled
   corpus): per-layer FVU, L0, dead fraction, and the replacement model's next-token agreement with
   the real model (every MLP replaced, with and without the error terms).

    .venv/bin/python benchmarks/bench_transcoders.py --rounds 3 --train-tokens 100000

Results go to stdout as JSON (a readable summary on stderr) with ``uptime`` next to each timing;
see RESULTS_transcoders.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

DEFAULT_TOKENS = 500_000
TARGET_MINUTES = 60.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def throughput(model: Any, rounds: int) -> dict[str, Any]:
    """Seconds per default training step and per model forward alone, alternating, after a warm-up step."""
    import torch

    from circuitscope.sae import build_contexts, default_corpus
    from circuitscope.transcoders import TranscoderSet, TranscoderTrainConfig, transcoder_config
    from circuitscope.transcoders.objective import step_loss

    cfg = TranscoderTrainConfig()
    tc = TranscoderSet(transcoder_config(model, cfg, "gemma-3-270m"))
    tc.initialize(torch.Generator().manual_seed(0))
    optim = torch.optim.Adam(tc.parameters(), lr=cfg.lr, betas=cfg.betas, fused=True)  # as train_transcoders
    contexts = build_contexts(model, default_corpus(), cfg.context_size, seed=0).tokens
    names = [h for layer in tc.layers for h in (tc.input_hook(layer), tc.output_hook(layer))]

    def forward(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = contexts[i * cfg.batch_contexts : (i + 1) * cfg.batch_contexts]
        with torch.inference_mode():
            cache = model.cache_activations(tokens, names)
        x = torch.stack([cache[tc.input_hook(layer)][:, 1:].reshape(-1, 640) for layer in tc.layers]).clone()
        y = torch.stack([cache[tc.output_hook(layer)][:, 1:].reshape(-1, 640) for layer in tc.layers]).clone()
        return x, y

    def step(i: int) -> None:
        x, y = forward(i)
        out = step_loss(tc, x, y, 0.0, cfg.bandwidth)
        optim.zero_grad(set_to_none=True)
        out.loss.backward()
        optim.step()

    step(0)  # warm-up
    steps, forwards, loads = [], [], []
    for r in range(rounds):
        t0 = time.perf_counter()
        forward(2 * r + 1)
        t1 = time.perf_counter()
        step(2 * r + 2)
        t2 = time.perf_counter()
        forwards.append(t1 - t0)
        steps.append(t2 - t1)
        loads.append(uptime())
        log(f"round {r}: forward {forwards[-1]:.2f} s, step {steps[-1]:.2f} s ({loads[-1]})")
    tokens_per_step = cfg.tokens_per_step(True)
    step_s, forward_s = statistics.median(steps), statistics.median(forwards)
    minutes = DEFAULT_TOKENS / tokens_per_step * step_s / 60
    return {
        "tokens_per_step": tokens_per_step,
        "step_seconds": steps,
        "forward_seconds": forwards,
        "median_step_seconds": step_s,
        "median_forward_seconds": forward_s,
        "forward_share_of_step": forward_s / step_s,
        "tokens_per_second": tokens_per_step / step_s,
        "default_run_minutes": minutes,
        "target_minutes": TARGET_MINUTES,
        "uptime": loads,
    }


def short_run(model: Any, tokens: int, eval_contexts: int) -> dict[str, Any]:
    from circuitscope.sae import build_contexts, default_corpus
    from circuitscope.transcoders import TranscoderTrainConfig, evaluate_transcoders, train_transcoders

    cfg = TranscoderTrainConfig(tokens=tokens)
    corpus = default_corpus()
    load_before = uptime()
    t0 = time.perf_counter()
    result = train_transcoders(model, cfg, corpus, model_name="gemma-3-270m")
    seconds = time.perf_counter() - t0
    load_after = uptime()
    log(f"trained {result.tokens} tokens in {seconds:.0f} s ({load_after})")
    held_out = build_contexts(model, corpus, cfg.context_size, seed=cfg.seed).tokens[-eval_contexts:]
    t1 = time.perf_counter()
    report = evaluate_transcoders(model, result.transcoders, held_out, batch_size=2)
    log(f"evaluated in {time.perf_counter() - t1:.0f} s")
    return {
        "tokens": result.tokens,
        "seconds": seconds,
        "tokens_per_second": result.tokens_per_second,
        "uptime_before": load_before,
        "uptime_after": load_after,
        "final_training_metrics": result.history[-1] if result.history else {},
        "evaluation": report.to_json(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Transcoder benchmark on Gemma-3-270M.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-tokens", type=int, default=0)
    parser.add_argument("--eval-contexts", type=int, default=16)
    args = parser.parse_args()
    import torch

    import circuitscope as cs

    torch.set_num_threads(2)
    log(f"loading gemma-3-270m ({uptime()})")
    model = cs.load_model("gemma-3-270m")
    out: dict[str, Any] = {"throughput": throughput(model, args.rounds)}
    t = out["throughput"]
    log(
        f"default step {t['median_step_seconds']:.2f} s for {t['tokens_per_step']} tokens, forward alone "
        f"{t['median_forward_seconds']:.2f} s ({t['forward_share_of_step']:.0%}); default run (500k tokens) "
        f"~{t['default_run_minutes']:.0f} min, target {TARGET_MINUTES:.0f}"
    )
    if args.train_tokens:
        out["short_run"] = short_run(model, args.train_tokens, args.eval_contexts)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
