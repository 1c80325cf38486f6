"""``circuitscope lab superposition|grokking|induction``: train toy models, measure them, write a report.

Each command writes ``report.html`` and ``results.json`` into ``--out-dir`` (and, for grokking and
induction, the training checkpoints, so an interrupted run resumes where it stopped), and prints
the numbers as JSON with ``--json``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from circuitscope.cli._options import JsonFlag, OutDirOpt, SeedOpt, TrainBatchOpt
from circuitscope.cli._output import emit_json, reporting_errors
from circuitscope.cli._paths import Writes, check_output_dir
from circuitscope.core.files import atomic_write_json

lab_app = typer.Typer(help="Toy-model labs: superposition, grokking, induction heads.", no_args_is_help=True)

ThreadsOpt = Annotated[
    int | None, typer.Option(help="torch CPU threads while training (1 is often fastest on a busy machine).", min=1)
]


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, payload, shared=False, indent=1, default=str)


def _finish(out: Path, payload: dict[str, Any], report: Any, as_json: bool, seconds: float) -> None:
    html, numbers = out / "report.html", out / "results.json"
    writes = Writes(as_json)
    payload = {**payload, "seconds": round(seconds, 2)}
    payload["report"] = writes.attempt("the HTML report", html, lambda: report.write(html))
    written = writes.attempt("the numbers", numbers, lambda: _write_json(numbers, payload))
    if as_json:
        writes.emit_json(payload)
        return
    if written and payload["report"]:
        from rich.console import Console

        Console(stderr=True).print(f"report: {html}  numbers: {numbers}  ({seconds:.0f} s)", markup=False)
    else:
        emit_json(payload)  # nothing on disk: the numbers go to the terminal instead
    writes.done()


@lab_app.command("superposition")
def superposition(
    steps: Annotated[int, typer.Option(help="Training steps per experiment (the paper: 10,000).", min=1)] = 10_000,
    seed: SeedOpt = 0,
    out: OutDirOpt = Path("lab-superposition"),
    batch_size: TrainBatchOpt = 1024,
    lr: Annotated[float, typer.Option(help="Adam learning rate, positive (the paper: 1e-3).")] = 1e-3,
    n_features: Annotated[int, typer.Option(help="Features of the first sweep (paper: 5).", min=2)] = 5,
    n_hidden: Annotated[int, typer.Option(help="Hidden dimensions of the first sweep (paper: 2).", min=1)] = 2,
    threads: ThreadsOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Toy Models of Superposition: 5→2 sweep, 20→5 norms, D* geometry (200→20), 2→1 phase diagram."""
    import torch

    from circuitscope.progress import stages
    from circuitscope.report.superposition import superposition_report
    from circuitscope.toy.superposition import TrainingOptions
    from circuitscope.toy.superposition_lab import SuperpositionLab, geometry_experiment, phase_diagram, sparsity_sweep

    start = time.perf_counter()
    previous = torch.get_num_threads()
    with reporting_errors(as_json):
        # threads None: each experiment picks the fastest count for its size
        training = TrainingOptions(steps=steps, batch_size=batch_size, lr=lr, seed=seed, threads=threads)
        check_output_dir(out, "--out-dir")
        try:
            if threads is not None:
                torch.set_num_threads(threads)
            with stages("lab superposition") as report:  # training steps on stderr, also under --json
                small = sparsity_sweep(n_features, n_hidden, 0.9, training=training, on_progress=report)
                medium = sparsity_sweep(20, 5, 0.7, training=training, on_progress=report)
                geometry = geometry_experiment(training=training, on_progress=report)
                phases = phase_diagram(training=training, on_progress=report)
        finally:
            torch.set_num_threads(previous)
    lab = SuperpositionLab(small, medium, geometry, phases, steps, seed)
    from rich.console import Console

    for name, spent in lab.times().items():  # on stderr: --json's stdout stays one JSON document
        Console(stderr=True).print(
            f"{name}: {spent.seconds:.1f} s training ({spent.sampling_share:.0%} sampling), "
            f"{spent.threads} torch thread(s)",
            markup=False,
        )
    _finish(out, lab.to_json(), superposition_report(lab), as_json, time.perf_counter() - start)


@lab_app.command("grokking")
def grokking(
    config: Annotated[
        str, typer.Option(help="'default' (small, fast) or 'paper' (Nanda et al.: p = 113).")
    ] = "default",
    steps: Annotated[int | None, typer.Option(help="Training steps (default: the config's).", min=1)] = None,
    seed: SeedOpt = 0,
    out: OutDirOpt = Path("lab-grokking"),
    p: Annotated[int | None, typer.Option(help="Override the modulus (a prime).")] = None,
    train_fraction: Annotated[float | None, typer.Option(help="Override the training fraction, in (0, 1).")] = None,
    lr: Annotated[float | None, typer.Option(help="Override the learning rate.")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="Steps between checkpoints.", min=1)] = None,
    stop_when_generalised: Annotated[bool, typer.Option(help="Stop once test loss < 0.1.")] = False,
    threads: ThreadsOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Progress measures for grokking: losses, Fourier components, restricted/excluded loss, phases."""
    from dataclasses import replace

    from circuitscope.progress import stages
    from circuitscope.report.grokking import grokking_report
    from circuitscope.toy.grokking_lab import GrokkingConfig, run_grokking

    start = time.perf_counter()
    with reporting_errors(as_json):
        cfg = GrokkingConfig.preset(config)
        overrides: dict[str, Any] = {"seed": seed, "stop_when_generalised": stop_when_generalised}
        for name, value in (
            ("steps", steps),
            ("p", p),
            ("train_fraction", train_fraction),
            ("lr", lr),
            ("checkpoint_every", checkpoint_every),
        ):
            if value is not None:
                overrides[name] = value
        cfg = replace(cfg, **overrides)
        check_output_dir(out, "--out-dir")
        with stages("lab grokking") as report:  # training steps on stderr, also under --json
            result = run_grokking(cfg, out / "checkpoints", threads=threads, on_progress=report)
    payload = {"config_name": config, **result.to_json()}
    from rich.console import Console

    Console(stderr=True).print(f"trained on {result.threads} torch thread(s)", markup=False)  # stdout: --json only
    _finish(out, payload, grokking_report(result), as_json, time.perf_counter() - start)


@lab_app.command("induction")
def induction(
    steps: Annotated[int, typer.Option(help="Training steps per model.", min=1)] = 2000,
    seed: SeedOpt = 0,
    out: OutDirOpt = Path("lab-induction"),
    layers: Annotated[str, typer.Option(help="Comma-separated depths to train.")] = "1,2,3,4",
    data: Annotated[
        str,
        typer.Option(
            help="'repeated' (random tokens with repeated segments), 'periodic' (a random block repeated to the end, "
            "random period) or 'text'."
        ),
    ] = "repeated",
    threads: ThreadsOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Induction heads in 1- to 4-layer attention-only models: formation, composition, ablation."""
    from dataclasses import replace

    from circuitscope.progress import stages
    from circuitscope.report.induction import induction_report
    from circuitscope.toy.errors import LabConfigError
    from circuitscope.toy.induction import InductionConfig, induction_json, run_induction

    start = time.perf_counter()
    with reporting_errors(as_json):
        try:
            depths = tuple(int(x) for x in layers.split(",") if x.strip())
        except ValueError as err:
            raise LabConfigError(f"--layers must be comma-separated integers like 1,2,3,4, got {layers!r}") from err
        if not depths:
            raise LabConfigError("--layers is empty; give depths like 1,2,3,4")
        base = InductionConfig(steps=steps, seed=seed, data=data)  # type: ignore[arg-type]  # str: the config checks it
        for depth in depths:  # every depth checked before the first one trains
            replace(base, n_layers=depth)
        check_output_dir(out, "--out-dir")
        with stages("lab induction") as report:  # training steps on stderr, also under --json
            runs = run_induction(depths, base, out / "checkpoints", threads=threads, on_progress=report)
    _finish(out, induction_json(runs), induction_report(runs), as_json, time.perf_counter() - start)


def register(app: typer.Typer) -> None:
    app.add_typer(lab_app, name="lab")
