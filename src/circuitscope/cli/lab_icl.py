"""``circuitscope lab icl``: in-context linear regression, linear self-attention against gradient descent.

Writes ``report.html`` and ``results.json`` into ``--out-dir`` and each model's training checkpoints
into its ``checkpoints/`` (an interrupted run resumes where it stopped); ``--json`` prints the numbers.
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


def _config(preset: str, seed: int, steps: int | None, layers: str | None, **fields: int | None) -> Any:
    """The ICLConfig of ``--config`` with the options given (``fields``: those named like its fields), validated."""
    from dataclasses import replace

    from circuitscope.toy.errors import LabConfigError
    from circuitscope.toy.icl.config import ICLConfig, ICLPreset

    chosen: Any = check_choice(preset, ICLPreset, "--config", error=LabConfigError)
    overrides: dict[str, Any] = {name: value for name, value in fields.items() if value is not None}
    if steps is not None:
        overrides |= {"lsa_steps": steps, "softmax_steps": steps}
    if layers is not None:
        try:
            overrides["lsa_layers"] = tuple(int(x) for x in layers.split(",") if x.strip())
        except ValueError as err:
            raise LabConfigError(f"--layers must be comma-separated depths like 1,2,3, got {layers!r}") from err
    return replace(ICLConfig.preset(chosen), seed=seed, **overrides)


def icl(
    layers: Annotated[
        str | None, typer.Option(help="Comma-separated depths of the linear self-attention models (e.g. 1,2,3).")
    ] = None,
    softmax_layers: Annotated[
        int | None, typer.Option(help="Layers of the softmax transformer, 0 for none (default: the config's).", min=0)
    ] = None,
    d: Annotated[int | None, typer.Option(help="Input dimension of the tasks (default: the config's).", min=1)] = None,
    n_context: Annotated[
        int | None, typer.Option(help="Context pairs per training task (default: the config's).", min=1)
    ] = None,
    config: Annotated[
        str, typer.Option(help="'default' (depths 1-3, minutes) or 'paper' (depths 1-5, longer training).")
    ] = "default",
    steps: Annotated[
        int | None, typer.Option(help="Training steps of every model (default: the config's).", min=1)
    ] = None,
    eval_tasks: Annotated[
        int | None, typer.Option(help="Held-out tasks per measurement (default: the config's).", min=1)
    ] = None,
    seed: SeedOpt = 0,
    out: OutDirOpt = Path("lab-icl"),
    threads: ThreadsOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Transformers learn in context by gradient descent (von Oswald et al. 2023)."""
    start = time.perf_counter()  # the time of the whole command, imports included
    from circuitscope.progress import stages
    from circuitscope.report.icl import icl_report
    from circuitscope.toy.icl.lab import run_icl

    with reporting_errors(as_json):
        sizes = {"softmax_layers": softmax_layers, "d": d, "n_context": n_context, "eval_tasks": eval_tasks}
        cfg = _config(config, seed, steps, layers, **sizes)
        check_output_dir(out, "--out-dir")
        with stages("lab icl") as report:  # training steps on stderr, also under --json
            result = run_icl(cfg, out / "checkpoints", threads=threads, on_progress=report)
    from rich.console import Console

    for run in result.models:  # on stderr: --json's stdout stays one JSON document
        Console(stderr=True).print(
            f"{run.name}: {run.seconds[-1]:.1f} s training on {run.threads} torch thread(s), "
            f"prediction cosine to {run.comparison.gd_steps}-step GD {run.comparison.prediction_cosine:.4f}",
            markup=False,
        )
    _finish(out, {"config_name": config, **result.to_json()}, icl_report(result), as_json, time.perf_counter() - start)


def register(app: typer.Typer) -> None:
    from circuitscope.cli.lab import lab_app

    lab_app.command("icl")(icl)
