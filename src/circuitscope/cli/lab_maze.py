"""``circuitscope lab maze``: a maze policy's goal misgeneralization, its cheese vector and a cheese probe.

Writes ``report.html`` and ``results.json`` into ``--out-dir`` and the training checkpoints into its
``checkpoints/`` (an interrupted run resumes where it stopped); ``--json`` prints the numbers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from circuitscope.cli._config_options import Configured, config_options
from circuitscope.cli._options import JsonFlag, OutDirOpt, SeedOpt
from circuitscope.cli._output import reporting_errors
from circuitscope.cli._paths import check_output_dir
from circuitscope.cli.lab import ThreadsOpt, _finish
from circuitscope.toy.maze.config import MazeConfig

_GIVEN = ("method", "steps", "cheese_region", "min_size", "max_size")
"""The config's fields the command exposes; each left out keeps the chosen ``--config``'s value."""


@config_options(
    MazeConfig,
    "method steps>=1 cheese_region min_size max_size",
    into="given",
    defaults=dict.fromkeys(_GIVEN),
    helps={"steps": "Training steps, or PPO iterations (default: the config's)."},
)
def maze(
    config: Annotated[
        str, typer.Option(help="'default' (mazes 5-11, trains in minutes) or 'paper' (IMPALA widths, mazes 3-15).")
    ] = "default",
    *,
    given: Configured[MazeConfig],
    seed: SeedOpt = 0,
    out: OutDirOpt = Path("lab-maze"),
    probe_layers: Annotated[
        str | None, typer.Option(help="Comma-separated hook-point indices to probe (0 = hook_in); default: all.")
    ] = None,
    threads: ThreadsOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Goal misgeneralization and the cheese vector (Langosco et al. 2022, Turner et al. 2023)."""
    from dataclasses import replace

    from circuitscope.progress import stages
    from circuitscope.report.maze import maze_report
    from circuitscope.toy.errors import LabConfigError
    from circuitscope.toy.maze.lab import run_maze

    start = time.perf_counter()
    with reporting_errors(as_json):
        overrides: dict[str, Any] = {"seed": seed, **{k: v for k, v in given.values.items() if v is not None}}
        if probe_layers is not None:
            try:
                overrides["probe_layers"] = tuple(int(x) for x in probe_layers.split(",") if x.strip())
            except ValueError as err:
                raise LabConfigError(
                    f"--probe-layers must be comma-separated integers like 0,2,4, got {probe_layers!r}"
                ) from err
        cfg = replace(MazeConfig.preset(config), **overrides)  # validated here, before any work
        check_output_dir(out, "--out-dir")
        with stages("lab maze") as report:  # training steps on stderr, also under --json
            result = run_maze(cfg, out / "checkpoints", threads=threads, on_progress=report)
    from rich.console import Console

    Console(stderr=True).print(
        f"trained by {result.method} on {result.threads} torch thread(s) in {result.train_seconds:.0f} s", markup=False
    )
    _finish(out, {"config_name": config, **result.to_json()}, maze_report(result), as_json, time.perf_counter() - start)


def register(app: typer.Typer) -> None:
    from circuitscope.cli.lab import lab_app

    lab_app.command("maze")(maze)
