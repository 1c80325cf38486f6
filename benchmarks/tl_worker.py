"""TransformerLens timing worker for bench_hooks.py (run under an interpreter that has transformer-lens).

It loads the same Hugging Face model folder twice, once as the plain transformers
baseline and once through ``HookedTransformer.from_pretrained(name, hf_model=...)``,
reads the token ids bench_hooks.py wrote, and times them round-robin, so TransformerLens's
ratios are to a baseline measured in this very process. Needs no network.

    python benchmarks/tl_worker.py --folder DIR --tokens ids.json --repeats 5 --out tl.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything comes from --folder; never wait on the hub

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing_common import Variant, machine_info, measure, summarize

RESID = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", required=True, help="Hugging Face model folder (config.json, safetensors)")
    ap.add_argument("--tl-name", default="google/gemma-3-270m", help="TransformerLens's name for the model")
    ap.add_argument("--tokens", required=True, help="JSON file: token ids as a [batch, pos] list")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", required=True, help="where to write the JSON results")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformer_lens import HookedTransformer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ids = torch.tensor(json.loads(Path(args.tokens).read_text()), dtype=torch.long)
    plain = AutoModelForCausalLM.from_pretrained(args.folder, dtype=torch.float32).eval()
    source = AutoModelForCausalLM.from_pretrained(args.folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.folder)
    warnings.filterwarnings("ignore", message=".*from_pretrained is deprecated")  # TL 3.x points to TL 4's bridge
    tl = HookedTransformer.from_pretrained(
        args.tl_name, hf_model=source, tokenizer=tokenizer, device="cpu", dtype=torch.float32
    )
    del source
    n_hooks = len(tl.hook_dict)

    def resid(name: str) -> bool:
        return name.endswith(RESID)

    variants: list[Variant] = [
        ("hf", lambda: plain(input_ids=ids, use_cache=False).logits),
        ("tl forward", lambda: tl(ids)),
        (f"tl run_with_cache (all {n_hooks})", lambda: tl.run_with_cache(ids)),
        ("tl run_with_cache (resid)", lambda: tl.run_with_cache(ids, names_filter=resid)),
    ]
    with torch.inference_mode():
        # from_pretrained centres the unembedding, which shifts logits by a constant: compare log-probs
        ref = plain(input_ids=ids[:1], use_cache=False).logits.log_softmax(-1)
        diff = (tl(ids[:1]).log_softmax(-1) - ref).abs().max().item()
        print(f"  [tl] max |log_softmax - hf's| on one row: {diff:.2e}; {n_hooks} hook points", file=sys.stderr)
        times = measure(variants, args.repeats)
    result: dict[str, Any] = {
        "transformer_lens": version("transformer-lens"),
        "transformers": version("transformers"),
        "n_hooks": n_hooks,
        "max_abs_logprob_diff": diff,
        "machine": machine_info(),
        "results": summarize(times, "hf"),
    }
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
