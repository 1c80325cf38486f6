"""``circuitscope info`` and ``circuitscope run``: a model's shape and hooks; one cached forward pass."""

from __future__ import annotations

import time
from typing import Annotated

import torch
import typer

from circuitscope.cli.output import emit_json, fail
from circuitscope.core.loading import DEFAULT_MODEL, load_model
from circuitscope.errors import CircuitscopeError, OptionError

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout.")]
ModelArg = Annotated[str, typer.Argument(help=f"Hub id, model folder, .gguf file, or {DEFAULT_MODEL!r}.")]


def info(model: ModelArg = DEFAULT_MODEL, as_json: JsonFlag = False) -> None:
    """Show a model's family, sizes and hook names."""
    try:
        hooked = load_model(model)
    except CircuitscopeError as err:
        raise fail(err, as_json) from err
    cfg = hooked.cfg.to_dict()
    n_params = sum(p.numel() for p in hooked.hf_model.parameters())
    if as_json:
        emit_json({"model": model, "config": cfg, "n_params": n_params, "hook_names": hooked.hook_names})
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    table = Table(title=f"{escape(model)} ({cfg['family']}, {n_params / 1e6:.1f}M parameters)", show_header=False)
    for key, value in cfg.items():
        if key != "layer_types":
            table.add_row(key, escape(str(value)))
    console.print(table)
    per_block = [n.split(".", 2)[2] for n in hooked.hook_names if n.startswith("blocks.0.")]
    top = [n for n in hooked.hook_names if not n.startswith("blocks.")]
    console.print(f"[bold]{len(hooked.hook_names)} hook points[/]: {', '.join(top)}")
    console.print(f"per block, as blocks.{{0..{hooked.cfg.n_layers - 1}}}.NAME: {', '.join(per_block)}")


def run(
    model: ModelArg = DEFAULT_MODEL,
    prompt: Annotated[
        str, typer.Argument(help="Text to run.")
    ] = "When Mary and John went to the store, John gave a drink to",
    top_k: Annotated[int, typer.Option(help="How many next-token predictions to show.", min=1)] = 5,
    names: Annotated[str, typer.Option(help="Glob of hook names to cache.")] = "*",
    as_json: JsonFlag = False,
) -> None:
    """Run one prompt with a cache: next-token predictions and what was cached."""
    try:
        hooked = load_model(model)
        if top_k > hooked.cfg.d_vocab:
            raise OptionError(
                f"--top-k {top_k} is more than the model's vocabulary of {hooked.cfg.d_vocab} tokens; "
                f"give at most {hooked.cfg.d_vocab}"
            )
        tokens = hooked.to_tokens(prompt)
        start = time.perf_counter()
        with torch.no_grad():
            logits, cache = hooked.run_with_cache(tokens, names=names)
        seconds = time.perf_counter() - start
    except CircuitscopeError as err:
        raise fail(err, as_json) from err
    probs = logits[0, -1].float().softmax(-1)
    top = probs.topk(top_k)
    predictions = [
        {"token": hooked.to_string(int(i)), "id": int(i), "prob": float(p)}
        for p, i in zip(top.values, top.indices, strict=True)
    ]
    n_values = sum(t.numel() for t in cache.values())
    payload = {
        "model": model,
        "prompt": prompt,
        "tokens": hooked.to_str_tokens(tokens[0]),
        "predictions": predictions,
        "cached_activations": len(cache),
        "cached_values": n_values,
        "seconds": round(seconds, 3),
    }
    if as_json:
        emit_json(payload)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{len(payload['tokens'])} tokens[/]: {escape(str(payload['tokens']))}")
    table = Table(title="next token")
    table.add_column("token")
    table.add_column("prob", justify="right")
    for row in predictions:
        table.add_row(escape(repr(row["token"])), f"{row['prob']:.3f}")
    console.print(table)
    console.print(f"cached {len(cache)} activations ({n_values / 1e6:.1f}M values) in {seconds:.2f}s")


def register(app: typer.Typer) -> None:
    app.command("info")(info)
    app.command("run")(run)
