"""Circuit discovery speed on Gemma-3-270M with IOI prompts, as multiples of one forward pass.

Measured side by side in one process, interleaved round-robin (``timing_common.measure``):

- ``forward``: the plain Hugging Face forward pass over the prompts (full logits), the unit;
- ``forward_answer``: the same forward stopped at the final norm, logits at the answer positions only;
- ``eap``: EAP scores of every edge of the graph (two forward passes, one backward pass);
- ``eap_ig``: EAP-IG with 5 steps;
- ``faithfulness``: one run of a circuit (the top 500 EAP edges kept, every other edge ablated).

The issue's target: EAP over the full graph on 32 IOI prompts in under a minute on the CPU.

    python benchmarks/bench_circuits.py [--prompts 32] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from timing_common import format_table, machine_info, measure, summarize

import circuitscope as cs
from circuitscope.analysis.attribution import answer_logits
from circuitscope.circuits import CircuitRunner, eap, eap_ig
from circuitscope.tasks import IOIConfig, ioi_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model = cs.load_model(cs.DEFAULT_MODEL)
    task = ioi_task(model, IOIConfig(n_prompts=args.prompts, seed=0))
    n = len(task)
    runner = CircuitRunner(model, task, batch_size=n)
    top = eap(model, task, batch_size=n).top_mask(500)

    @torch.no_grad()
    def forward() -> object:
        return model(task.clean_tokens)

    @torch.no_grad()
    def forward_answer() -> object:
        return answer_logits(model, task.clean_tokens, task.answer_pos)

    variants = [
        ("forward", forward),
        ("forward_answer", forward_answer),
        ("eap", lambda: eap(model, task, batch_size=n)),
        ("eap_ig", lambda: eap_ig(model, task, steps=5, batch_size=n)),
        ("faithfulness", lambda: runner.run(top)),
    ]
    samples = measure(variants, repeats=args.repeats)
    rows = summarize(samples, baseline="forward")
    info = {**machine_info(), "model": cs.DEFAULT_MODEL, "prompts": n, "seq_len": task.seq_len,
            "edges": runner.graph.n_edges}  # fmt: skip
    if args.json:
        print(json.dumps({"machine": info, "rows": rows}, indent=2))
        return
    print(f"# circuit discovery on {cs.DEFAULT_MODEL}: {n} IOI prompts of {task.seq_len} tokens, "
          f"{runner.graph.n_edges} edges")  # fmt: skip
    print(json.dumps(info))
    print(format_table(rows, targets={"eap": "< 60 s wall"}))


if __name__ == "__main__":
    main()
