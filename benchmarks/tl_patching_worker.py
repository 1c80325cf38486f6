"""TransformerLens side of bench_patching.py (run under an interpreter that has transformer-lens).

Times ``transformer_lens.patching.get_act_patch_attn_head_out_all_pos`` and TL's own forward
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

    def patch() -> object:
        with torch.no_grad():
            return patching.get_act_patch_attn_head_out_all_pos(model, corrupted, clean_cache, metric)

    rows_out = summarize(measure([("forward", forward), ("patching", patch)], repeats=args.repeats), "forward")
    by = {r["name"]: r for r in rows_out}
    Path(args.out).write_text(
        json.dumps(
            {"rows": rows_out, "patching_over_forward": by["patching"]["ratio"], "n_hooks": len(model.hook_dict)}
        )
    )


if __name__ == "__main__":
    main()
