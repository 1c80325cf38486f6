"""``circuitscope lab othello``: Othello-GPT, a world model in a sequence model.

Writes ``report.html`` and ``results.json`` into ``--out-dir`` and the training checkpoints into its
``checkpoints/`` (an interrupted run resumes where it stopped); ``--json`` prints the numbers.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from circuitscope.cli._options import JsonFlag, OutDirOpt, SeedOpt, check_choice
from circuitscope.cli._output import reporting_errors
from circuitscope.cli._paths import check_output_dir
from circuitscope.cli.lab import ThreadsOpt, _finish


def _layers(text: str) -> tuple[int, ...]:
    from circuitscope.toy.errors import LabConfigError

    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as err:
        raise LabConfigError(f"--probe-layers must be comma-separated layers like 0,2,4, got {text!r}") from err


def othello(
    config: Annotated[
        str, typer.Option(help="'default' (6x6, 4 layers of width 96, minutes) or 'paper' (8x8, 8 layers, hours).")
    ] = "default",
    steps: Annotated[int | None, typer.Option(help="Training steps (default: the config's).", min=1)] = None,
    size: Annotated[int | None, typer.Option(help="Board side: 6 or 8 (4 for a quick test).")] = None,
    games: Annotated[int | None, typer.Option(help="Training games (default: the config's).", min=1)] = None,
    layers: Annotated[int | None, typer.Option(help="Transformer blocks (default: the config's).", min=1)] = None,
    d_model: Annotated[int | None, typer.Option(help="Residual width (default: the config's).", min=1)] = None,
    probe_steps: Annotated[
        int | None, typer.Option(help="Adam steps of each probe (default: the config's).", min=1)
    ] = None,
    probe_layers: Annotated[
        str | None, typer.Option(help="Comma-separated residual streams to probe (0: embedding; default: all).")
    ] = None,
    seed: SeedOpt = 0,
    out: OutDirOpt = Path("lab-othello"),
    strength: Annotated[
        float, typer.Option(help="Edit strength: the probe's logit difference mirrored times this (1: mirrored).")
    ] = 1.0,
    threads: ThreadsOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Emergent world representations (Li et al. 2023; Nanda et al. 2023): legal moves, board probes, edits."""
    start = time.perf_counter()
    from circuitscope.progress import stages
    from circuitscope.report.othello import othello_report
    from circuitscope.toy.errors import LabConfigError
    from circuitscope.toy.othello.config import OthelloConfig, OthelloPreset
    from circuitscope.toy.othello.lab import run_othello

    with reporting_errors(as_json):
        preset = check_choice(config, OthelloPreset, "--config", error=LabConfigError)
        if not strength > 0:
            raise LabConfigError(f"--strength must be positive, got {strength}")
        given = {"steps": steps, "size": size, "n_train_games": games, "n_layers": layers, "d_model": d_model}
        overrides: dict[str, Any] = {"seed": seed, "probe_steps": probe_steps}
        overrides = {name: value for name, value in {**overrides, **given}.items() if value is not None}
        if probe_layers is not None:
            overrides["probe_layers"] = _layers(probe_layers)
        cfg = replace(OthelloConfig.preset(preset), **overrides)  # type: ignore[arg-type]  # validated here
        check_output_dir(out, "--out-dir")
        with stages("lab othello") as report:  # training steps on stderr, also under --json
            result = run_othello(cfg, out / "checkpoints", threads=threads, strength=strength, on_progress=report)
    from rich.console import Console

    Console(stderr=True).print(  # on stderr: --json's stdout stays one JSON document
        f"trained on {result.threads} torch thread(s); legal-move top-1 {result.final_accuracy:.1%}",
        markup=False,
    )
    payload = {"config_name": config, **result.to_json()}
    _finish(out, payload, othello_report(result), as_json, time.perf_counter() - start)


def register(app: typer.Typer) -> None:
    from circuitscope.cli.lab import lab_app

    lab_app.command("othello")(othello)
