"""``circuitscope info`` and ``circuitscope run``: a model's (or every family's) hooks; one cached forward pass."""

from __future__ import annotations

import time
from typing import Annotated, Any

import torch
import typer

from circuitscope.cli._options import JsonFlag, ModelArg, OptionalModelOpt, pick_model
from circuitscope.cli._output import emit_json, reporting_errors
from circuitscope.core.catalogue import family_capabilities, family_hooks
from circuitscope.core.loading import load_model
from circuitscope.errors import OptionError
from circuitscope.models import adapter_for, all_adapters
from circuitscope.models.base import Adapter

DEFAULT_PROMPT = "When Mary and John went to the store, John gave a drink to"


FamiliesFlag = Annotated[
    bool,
    typer.Option(
        "--families", help="List every family's model types, capabilities and hook points (no model is loaded)."
    ),
]


def info(
    model_arg: ModelArg = None,
    model_opt: OptionalModelOpt = None,
    families: FamiliesFlag = False,
    family: Annotated[
        str | None,
        typer.Option(
            help="List only this family (implies --families): its name or one of its model types, e.g. mistral."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show a model's family, sizes, capabilities and hook names; or, with --families, every family's hooks."""
    if families or family is not None:
        with reporting_errors(as_json):
            if model_opt is not None or model_arg is not None:
                if families:
                    raise OptionError("--families lists every family and loads no model: drop the model, or --families")
                raise OptionError("--family lists one family and loads no model: drop the model, or --family")
            _print_families(_chosen_families(family), as_json)
        return
    with reporting_errors(as_json):
        model = pick_model(model_opt, model_arg)
        hooked = load_model(model)
    cfg = hooked.cfg.to_dict()
    caps = family_capabilities(adapter_for(hooked.cfg.model_type))
    n_params = sum(p.numel() for p in hooked.hf_model.parameters())
    if as_json:
        payload = {"model": model, "config": cfg, "n_params": n_params, "hook_names": hooked.hook_names}
        emit_json({**payload, "capabilities": caps.to_json()})
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
    console.print(f"[bold]capabilities[/]: {escape(caps.line())}")
    per_block = [n.split(".", 2)[2] for n in hooked.hook_names if n.startswith("blocks.0.")]
    top = [n for n in hooked.hook_names if not n.startswith("blocks.")]
    console.print(f"[bold]{len(hooked.hook_names)} hook points[/]: {', '.join(top)}")
    console.print(f"per block, as blocks.{{0..{hooked.cfg.n_layers - 1}}}.NAME: {', '.join(per_block)}")


def _chosen_families(name: str | None) -> tuple[Adapter, ...]:
    """The adapters ``--family NAME`` names (by family or by one of its model types); every adapter for None."""
    adapters = all_adapters()
    if name is None:
        return adapters
    key = name.strip().lower()
    chosen = tuple(a for a in adapters if key == a.family or key in a.model_types)
    if not chosen:
        known = ", ".join(sorted({a.family for a in adapters}))
        raise OptionError(
            f"--family {name!r} is no family circuitscope knows; give one of {known} "
            "(or one of their model types: see circuitscope info --families)"
        )
    return chosen


def _print_families(adapters: tuple[Adapter, ...], as_json: bool) -> None:
    """The ``adapters``' family, model types, capabilities and hook points (from the adapters alone)."""
    if as_json:
        rows = [{**family_hooks(a).to_json(), "capabilities": family_capabilities(a).to_json()} for a in adapters]
        emit_json({"families": rows})
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    for adapter in adapters:
        hooks = family_hooks(adapter)
        console.print(f"[bold]{escape(adapter.family)}[/] ({escape(', '.join(adapter.model_types))})")
        console.print(f"  capabilities: {escape(family_capabilities(adapter).line())}")
        for hook in hooks.hooks:
            axes = ", ".join(hook.axes)
            when = f"  (only: {hook.condition})" if hook.condition else ""
            console.print(escape(f"  {hook.name}  [{axes}]{when}"))


def run(
    model_arg: ModelArg = None,
    prompt: Annotated[
        str | None,
        typer.Argument(metavar="PROMPT", help=f"Text to run (default: {DEFAULT_PROMPT!r}).", show_default=False),
    ] = None,
    model_opt: OptionalModelOpt = None,
    top_k: Annotated[int, typer.Option(help="How many next-token predictions to show.", min=1)] = 5,
    names: Annotated[str, typer.Option(help="Glob of hook names to cache.")] = "*",
    as_json: JsonFlag = False,
) -> None:
    """Run one prompt with a cache: next-token predictions and what was cached."""
    if model_opt is not None and model_arg is not None and prompt is None:
        model_arg, prompt = None, model_arg  # `run --model MODEL PROMPT`: the one argument is the prompt
    with reporting_errors(as_json):
        model = pick_model(model_opt, model_arg)
        hooked = load_model(model)
        if top_k > hooked.cfg.d_vocab:
            raise OptionError(
                f"--top-k {top_k} is more than the model's vocabulary of {hooked.cfg.d_vocab} tokens; "
                f"give at most {hooked.cfg.d_vocab}"
            )
        prompt = DEFAULT_PROMPT if prompt is None else prompt
        tokens = hooked.to_tokens(prompt)
        start = time.perf_counter()
        with torch.no_grad():
            logits, cache = hooked.run_with_cache(tokens, names=names)
        seconds = time.perf_counter() - start
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
    _print_run(payload, seconds)


def _print_run(payload: dict[str, Any], seconds: float) -> None:
    """The tokens, the next-token table and what was cached."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{len(payload['tokens'])} tokens[/]: {escape(str(payload['tokens']))}")
    table = Table(title="next token")
    table.add_column("token")
    table.add_column("prob", justify="right")
    for row in payload["predictions"]:
        table.add_row(escape(repr(row["token"])), f"{row['prob']:.3f}")
    console.print(table)
    n, n_values = payload["cached_activations"], payload["cached_values"]
    console.print(f"cached {n} activations ({n_values / 1e6:.1f}M values) in {seconds:.2f}s")


def register(app: typer.Typer) -> None:
    app.command("info")(info)
    app.command("run")(run)
