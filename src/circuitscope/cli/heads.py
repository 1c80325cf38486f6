"""``circuitscope heads MODEL``: previous-token, duplicate-token, induction, copying and copy-suppression heads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer

from circuitscope.cli.output import emit_json, fail
from circuitscope.core.loading import DEFAULT_MODEL
from circuitscope.errors import CircuitscopeError

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout.")]


@torch.no_grad()  # scoped to the command: no process-wide autograd switch
def heads(
    model: Annotated[str, typer.Argument(help="Hub id, model folder, .gguf, or the embedded default.")] = DEFAULT_MODEL,
    html: Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML report here.")] = None,
    seq_len: Annotated[
        int, typer.Option("--seq-len", help="Length of each half of the repeated random tokens.", min=2)
    ] = 32,
    batch: Annotated[int, typer.Option("--batch", help="Number of repeated random sequences.", min=1)] = 8,
    top: Annotated[
        int, typer.Option("--top", help="Heads listed per detector (and composition pairs per mode).", min=1)
    ] = 5,
    composition: Annotated[
        bool, typer.Option("--composition/--no-composition", help="Also compute Q/K/V composition scores.")
    ] = True,
    k: Annotated[int, typer.Option("--k", help="Top/bottom k of the OV copying scores.", min=1)] = 5,
    n_tokens: Annotated[
        int, typer.Option("--n-tokens", help="Tokens sampled for the OV copying scores.", min=2)
    ] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the random tokens and the token sample.")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Score every attention head as previous-token, duplicate-token, induction, copying and copy-suppression."""
    from circuitscope.analysis.copying import CopyingConfig
    from circuitscope.core.loading import load_model
    from circuitscope.progress import status
    from circuitscope.report.heads import HeadsConfig, heads_analysis, heads_report

    try:
        config = HeadsConfig(
            seq_len=seq_len,
            batch=batch,
            top=top,
            composition=composition,
            copying=CopyingConfig(k=k, n_tokens=n_tokens, seed=seed),
            seed=seed,
        )
    except ValueError as err:
        raise fail(err, as_json) from err
    try:
        with status(f"loading {model}"):
            hooked = load_model(model)
        stages: list[str] = []

        def say(message: str) -> None:
            stages.append(message)

        with status("scoring heads (attention detectors, OV copying, composition)"):
            analysis = heads_analysis(hooked, model, config, status=say)
    except CircuitscopeError as err:
        raise fail(err, as_json) from err
    path = heads_report(analysis).write(html) if html is not None else None
    if as_json:
        payload = analysis.to_dict()
        payload["report"] = str(path) if path is not None else None
        emit_json(payload)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"Top heads of {model}")
    table.add_column("detector")
    for rank in range(1, top + 1):
        table.add_column(f"#{rank}", justify="right")
    for name in analysis.scores:
        cells = [f"L{la}H{h} {s:.2f}" for la, h, s in analysis.top(name)]
        table.add_row(name, *cells, *[""] * (top - len(cells)))
    console.print(table)
    comp = analysis.composition
    if comp is not None:
        for mode in ("q", "k", "v"):
            pairs = ", ".join(f"L{la}H{ha}->L{lb}H{hb} {s:.3f}" for la, ha, lb, hb, s in comp.top(mode, 3))  # type: ignore[arg-type]
            console.print(
                f"{mode.upper()}-composition: {pairs} (baseline {comp.baseline[mode]:.3f}, "
                f"1/sqrt(d_model) {comp.baseline_theory:.3f})",
                highlight=False,
            )
    if path is not None:
        console.print(f"report: {path}")


def register(app: typer.Typer) -> None:
    app.command("heads")(heads)
