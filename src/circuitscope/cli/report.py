"""``circuitscope report ioi`` and ``circuitscope report task``: the causal report, as HTML and --json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from circuitscope.cli._options import (
    BatchOpt,
    BatchRowsOpt,
    JsonFlag,
    ModelOpt,
    OutOpt,
    SeedOpt,
    batch_size_of,
    check_choice,
)
from circuitscope.cli._paths import Writes, check_output_file
from circuitscope.cli.output import reporting_errors
from circuitscope.core.loading import DEFAULT_MODEL, load_model

report_app = typer.Typer(
    help="Write a causal-analysis report (self-contained HTML; --json for the numbers).", no_args_is_help=True
)


def _finish(analysis: object, out: Path, as_json: bool) -> None:
    from circuitscope.analysis.causal import CausalAnalysis
    from circuitscope.report.causal import causal_report

    assert isinstance(analysis, CausalAnalysis)
    writes = Writes(as_json)
    path = writes.attempt("the HTML report", out, lambda: causal_report(analysis).write(out))
    payload = analysis.to_json() | {"report": path}
    if as_json:
        writes.emit_json(payload)
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    console.print(
        f"[bold]{escape(analysis.task.name)}[/] on {escape(analysis.model_name)}: "
        f"logit diff clean {analysis.clean_logit_diff:.3f}, "
        f"corrupted {analysis.corrupted_logit_diff:.3f}; accuracy {analysis.clean_accuracy:.0%}"
    )
    for head in analysis.top_heads:
        console.print(f"  L{head.layer}H{head.head}: patching {head.patching:+.3f}, DLA {head.dla:+.3f}")
    if path is not None:
        console.print(f"wrote {escape(path)} in {analysis.seconds:.0f} s")
    writes.done()


@report_app.command("ioi")
def ioi(
    model: ModelOpt = DEFAULT_MODEL,
    n_prompts: Annotated[int, typer.Option("--n-prompts", min=2, help="IOI prompt pairs.")] = 32,
    seed: SeedOpt = 0,
    corruption: Annotated[str, typer.Option(help="abc (three new names) or swap (S2 -> IO).")] = "abc",
    positional: Annotated[
        int,
        typer.Option("--positional-prompts", min=2, help="Prompts (of one template) for layer x position patching."),
    ] = 8,
    out: OutOpt = Path("reports/ioi.html"),
    batch_size: BatchOpt = 256,
    batch_rows: BatchRowsOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Indirect-object identification (Wang et al. 2022): which components make the model say the IO."""
    from circuitscope.analysis.causal import causal_analysis
    from circuitscope.tasks.ioi import Corruption, IOIConfig, ioi_task

    with reporting_errors(as_json):
        check_choice(corruption, Corruption, "--corruption")
        check_output_file(out, "--out")
        hooked = load_model(model)
        task = ioi_task(hooked, IOIConfig(n_prompts=n_prompts, seed=seed, corruption=corruption))  # type: ignore[arg-type]
        positional_task = ioi_task(
            hooked,
            IOIConfig(n_prompts=min(n_prompts, positional), seed=seed, corruption=corruption, templates="one"),  # type: ignore[arg-type]
        )
        analysis = causal_analysis(
            hooked, task, model_name=model, positional_task=positional_task,
            batch_size=batch_size_of(batch_size, batch_rows),
        )  # fmt: skip
    _finish(analysis, out, as_json)


@report_app.command("task")
def task(
    pairs: Annotated[
        Path, typer.Option("--pairs", help='JSONL file: {"clean", "corrupted", "correct", "incorrect"} per line.')
    ],
    model: ModelOpt = DEFAULT_MODEL,
    out: OutOpt = Path("reports/task.html"),
    batch_size: BatchOpt = 256,
    batch_rows: BatchRowsOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """The same report for your own prompt pairs."""
    from circuitscope.analysis.causal import causal_analysis
    from circuitscope.tasks.jsonl import load_jsonl_task
    from circuitscope.tasks.task import TaskError

    with reporting_errors(as_json):
        if not pairs.is_file():
            raise TaskError(
                f"--pairs {pairs} is not a file: give a JSONL file with one "
                '{"clean", "corrupted", "correct", "incorrect"} object per line'
            )
        check_output_file(out, "--out")
        hooked = load_model(model)
        loaded = load_jsonl_task(hooked, pairs)
        analysis = causal_analysis(hooked, loaded, model_name=model, batch_size=batch_size_of(batch_size, batch_rows))
    _finish(analysis, out, as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")
