"""``circuitscope lab addition``: n-digit addition, each digit's phase change and the heads of each carry.

Writes ``report.html`` and ``results.json`` into ``--out-dir`` and the training checkpoints into its
``checkpoints/`` (an interrupted run resumes where it stopped); ``--json`` prints the numbers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from circuitscope.cli._options import JsonFlag, OutDirOpt, SeedOpt, check_choice
from circuitscope.cli._output import reporting_errors
from circuitscope.cli._paths import check_output_dir
from circuitscope.cli.lab import ThreadsOpt, _finish


def addition(
    config: Annotated[
        str, typer.Option(help="'default' (5 digits, minutes on 2 cores) or 'paper' (wider).")
    ] = "default",
    digits: Annotated[int | None, typer.Option(help="Digits of each operand (default: the config's, 5).")] = None,
    steps: Annotated[int | None, typer.Option(help="Training steps (default: the config's).")] = None,
    seed: SeedOpt = 0,
    out: OutDirOpt = Path("lab-addition"),
    threads: ThreadsOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """n-digit addition: a phase change per digit, and the heads of each carry (head ablation per digit)."""
    from dataclasses import replace

    from circuitscope.progress import stages
    from circuitscope.report.addition import addition_report
    from circuitscope.toy.addition_lab import AdditionConfig, AdditionPreset, run_addition

    start = time.perf_counter()
    with reporting_errors(as_json):
        preset = check_choice(config, AdditionPreset, "--config")
        overrides: dict[str, Any] = {"seed": seed}
        if digits is not None:
            overrides["n_digits"] = digits
        if steps is not None:
            overrides["steps"] = steps
        cfg = replace(AdditionConfig.preset(preset), **overrides)  # type: ignore[arg-type]  # checked just above  # validated here, before any work
        check_output_dir(out, "--out-dir")
        with stages("lab addition") as report:  # training steps on stderr, also under --json
            result = run_addition(cfg, out / "checkpoints", threads=threads, on_progress=report)
    payload = {"config_name": config, **result.to_json()}
    _finish(out, payload, addition_report(result), as_json, time.perf_counter() - start)


def register(app: typer.Typer) -> None:
    from circuitscope.cli.lab import lab_app

    lab_app.command("addition")(addition)
