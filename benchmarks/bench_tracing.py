"""Causal tracing of one prompt on Gemma-3-270M (issue 15, target 7: <= 30 s), the old engine beside the new.

"The Eiffel Tower is located in the city of", noise corruption, the default windows (10 layers) and
``--samples`` noise samples (default 10), the three kinds (resid, mlp, attn), each traced by:

- ``old``: the engine before key/value reuse (copied below from the code it replaced): batches of
  restorations x samples that resume at the batch's first restored layer, every position computed;
- ``new``: :func:`circuitscope.analysis.causal_trace` (each restoration joins at its own layer, only
  the positions from the restored token on are computed, the earlier ones' keys and values reused).

The two run interleaved kind by kind in one process (the CPU is shared: ``uptime`` is printed next to
every timing), and their traces must agree (the max difference is printed).

    python benchmarks/bench_tracing.py [--samples 10] [--window 10] [--kinds resid,mlp,attn]
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections.abc import Callable

import torch

from circuitscope.analysis.tracing import _KIND_HOOK, TraceKind, _prepare, _window, causal_trace
from circuitscope.analysis.tracing_engine import _Restore, _Setup
from circuitscope.analysis.tracing_results import TraceConfig
from circuitscope.core.hook_points import HookPoint
from circuitscope.core.hooked_model import HookedModel
from circuitscope.core.loading import load_model
from circuitscope.engine.batching import batched

PROMPT, SUBJECT = "The Eiffel Tower is located in the city of", "The Eiffel Tower"


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# ------------------------------------------------------------------ the old engine, as it was


def _edit(x: torch.Tensor, rows: slice, r: _Restore, clean: torch.Tensor) -> None:
    pos = list(r.positions)
    if r.index is None:
        x[rows, pos] = clean[0, pos]
    else:
        x[rows, pos, r.index] = clean[0, pos, r.index]


@torch.no_grad()
def _old_restored_probs(setup: _Setup, groups: list[list[_Restore]]) -> torch.Tensor:
    model, replay = setup.model, setup.replay
    n_layers, samples = model.cfg.n_layers, replay.batch
    last = setup.tokens.shape[0] - 1
    out = torch.empty(len(groups))

    def entry(group: list[_Restore]) -> int:
        return min((r.entry for r in group), default=n_layers)

    order = sorted(range(len(groups)), key=lambda i: entry(groups[i]))
    for chunk in batched(order, max(1, setup.cfg.batch_size // samples)):
        start = min(entry(groups[i]) for i in chunk)
        resid = (replay.resid_pre[start] if start < n_layers else replay.final_resid).repeat(len(chunk), 1, 1)
        resid = resid.clone()
        edits: dict[str, list[tuple[slice, _Restore]]] = {}
        for k, i in enumerate(chunk):
            rows = slice(k * samples, (k + 1) * samples)
            for r in groups[i]:
                name = f"blocks.{r.layer}.{r.hook}"
                if r.entry == start and r.hook == "hook_resid_post":
                    _edit(resid, rows, r, setup.clean[name])
                else:
                    edits.setdefault(name, []).append((rows, r))

        def make(name: str, todo: list[tuple[slice, _Restore]]) -> Callable[[torch.Tensor, HookPoint], torch.Tensor]:
            def restore(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
                x = x.clone()
                for rows, r in todo:
                    _edit(x, rows, r, setup.clean[name])
                return x

            return restore

        with model.hooks([(name, make(name, todo)) for name, todo in edits.items()]):
            logits = replay.run(start, resid, torch.full((resid.shape[0],), last, device=resid.device))
        probs = logits.float().softmax(-1)[:, setup.baseline.target_id].view(len(chunk), samples)
        out[torch.tensor(chunk)] = probs.mean(1).cpu()
    return out


def _old_trace(model: HookedModel, kind: TraceKind, samples: int, window: int) -> torch.Tensor:
    hook = _KIND_HOOK[kind]
    n_layers = model.cfg.n_layers
    cfg = TraceConfig(n_samples=samples)
    setup = _prepare(model, PROMPT, SUBJECT, cfg, None, [f"blocks.{la}.{hook}" for la in range(n_layers)])
    seq, first = setup.tokens.shape[0], setup.span[0]
    cells = [(la, p) for la in range(n_layers) for p in range(first, seq)]
    groups = [
        [_Restore(w, hook, (p,)) for w in ([la] if kind == "resid" else _window(la, window, n_layers))]
        for la, p in cells
    ]
    probs = _old_restored_probs(setup, groups)
    restored = torch.full((n_layers, seq), setup.baseline.corrupted_prob)
    for (la, p), value in zip(cells, probs.tolist(), strict=True):
        restored[la, p] = value
    return restored


# ------------------------------------------------------------------ the run


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--kinds", default="resid,mlp,attn", help="the kinds to trace, comma-separated")
    args = parser.parse_args()
    model = load_model("gemma-3-270m")
    print(f"Gemma-3-270M, {PROMPT!r}, noise, {args.samples} samples, window {args.window}, "
          f"{torch.get_num_threads()} torch threads")  # fmt: skip
    totals = {"old": 0.0, "new": 0.0}
    kinds: list[TraceKind] = [k for k in ("resid", "mlp", "attn") if k in args.kinds.split(",")]
    for kind in kinds:
        print(f"[{kind}] before: {_uptime()}", flush=True)
        start = time.perf_counter()
        old = _old_trace(model, kind, args.samples, args.window)
        t_old = time.perf_counter() - start
        start = time.perf_counter()
        new = causal_trace(model, PROMPT, SUBJECT, kind=kind, n_samples=args.samples, window=args.window).restored
        t_new = time.perf_counter() - start
        totals["old"] += t_old
        totals["new"] += t_new
        diff = float((old - new).abs().max())
        print(f"[{kind}] old {t_old:7.1f} s   new {t_new:7.1f} s   ratio {t_old / t_new:5.2f}x   "
              f"max |old - new| {diff:.1e}   after: {_uptime()}", flush=True)  # fmt: skip
    print(f"total: old {totals['old']:.1f} s, new {totals['new']:.1f} s, ratio {totals['old'] / totals['new']:.2f}x")


if __name__ == "__main__":
    main()
