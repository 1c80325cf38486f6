"""TransformerLens side of bench_patching.py (run under an interpreter that has transformer-lens).

Times ``transformer_lens.patching.get_act_patch_attn_head_out_all_pos`` and ``get_act_patch_resid_pre``
(``--targets``) and TL's own forward
on the same prompts and metric, round-robin, and writes their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing_common import measure, summarize


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folder", required=True)
    ap.add_argument("--task", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--targets", default="head_out", help="comma-separated: head_out, resid_pre")
    ap.add_argument("--resid-layers", default="", help="resid_pre on these layers only (comma-separated; all if empty)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--tl-name", default="google/gemma-3-270m")
    args = ap.parse_args()
    from transformer_lens import HookedTransformer, patching
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = json.loads(Path(args.task).read_text())
    clean = torch.tensor(spec["clean"])
    corrupted = torch.tensor(spec["corrupted"])
    pos = torch.tensor(spec["answer_pos"])
    correct, incorrect = torch.tensor(spec["correct"]), torch.tensor(spec["incorrect"])
    rows = torch.arange(len(pos))
    source = AutoModelForCausalLM.from_pretrained(args.folder, dtype=torch.float32).eval()
    warnings.filterwarnings("ignore")
    model = HookedTransformer.from_pretrained(
        args.tl_name, hf_model=source, tokenizer=AutoTokenizer.from_pretrained(args.folder), device="cpu"
    )
    del source

    def metric(logits: torch.Tensor) -> torch.Tensor:
        answer = logits[rows, pos]
        return (answer[rows, correct] - answer[rows, incorrect]).mean()

    with torch.no_grad():
        _, clean_cache = model.run_with_cache(clean)

    def forward() -> object:
        with torch.no_grad():
            return model(corrupted)

    functions = {
        "head_out": patching.get_act_patch_attn_head_out_all_pos,
        "resid_pre": patching.get_act_patch_resid_pre,
    }

    resid_layers = [int(x) for x in args.resid_layers.split(",") if x]

    def patch(target: str) -> object:
        with torch.no_grad():
            if target == "resid_pre" and resid_layers:  # get_act_patch_resid_pre's own code on a subset of layers
                import pandas as pd

                n = corrupted.shape[1]
                index = pd.DataFrame({"layer": [la for la in resid_layers for _ in range(n)],
                                      "pos": [p for _ in resid_layers for p in range(n)]})  # fmt: skip
                return patching.generic_activation_patch(
                    model, corrupted, clean_cache, metric, patching.layer_pos_patch_setter, "resid_pre",
                    index_df=index,
                )  # fmt: skip
            return functions[target](model, corrupted, clean_cache, metric)

    variants = [("forward", forward)] + [(t, lambda t=t: patch(t)) for t in args.targets.split(",")]
    rows_out = summarize(measure(variants, repeats=args.repeats, warmup=args.warmup), "forward")
    by = {r["name"]: r for r in rows_out}
    Path(args.out).write_text(
        json.dumps({"rows": rows_out, "patching_over_forward": {t: by[t]["ratio"] for t in by if t != "forward"}})
    )


if __name__ == "__main__":
    main()
