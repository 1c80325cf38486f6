"""``circuitscope report ioi`` and ``circuitscope report task``: the reports, as HTML and --json.

``report ioi`` finds the model's IOI circuit class by class (Wang et al. 2022), evaluates it, and puts
it beside GPT-2 small's published circuit, then adds the causal analysis (logit lens, DLA, patching);
``--quick`` writes only the causal analysis. The circuit file goes next to the report
(``reports/ioi.circuit.json``) for ``circuitscope circuit-eval``. ``report task`` is the causal
report of a built-in task (``--task``) or a JSONL file of prompt pairs (``--pairs``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from circuitscope.cli._options import BatchRowsOpt, JsonFlag, ModelOpt, OutOpt, SeedOpt, check_choice
from circuitscope.cli._output import reporting_errors
from circuitscope.cli._paths import Writes, check_output_file
from circuitscope.core.loading import DEFAULT_MODEL, load_model
from circuitscope.errors import OptionError
from circuitscope.progress import stages
from circuitscope.tasks.ioi import Corruption
from circuitscope.tasks.library import TASK_NAMES

if TYPE_CHECKING:
    from circuitscope.analysis.causal import CausalAnalysis
    from circuitscope.circuits.ioi.result import IOICircuitResult
    from circuitscope.circuits.ioi.run import IOICircuitConfig
    from circuitscope.core.hooked_model import HookedModel

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
    if analysis.check.warning is not None:
        typer.echo(f"warning: {analysis.check.warning}", err=True)
    if as_json:
        writes.emit_json(payload)
        return
    _print_causal(analysis)
    _print_written([path], analysis.seconds)
    writes.done()


def _print_causal(analysis: CausalAnalysis) -> None:
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


def _print_written(paths: list[str | None], seconds: float) -> None:
    from rich.console import Console
    from rich.markup import escape

    for path in paths:
        if path is not None:
            Console().print(f"wrote {escape(path)} in {seconds:.0f} s")


def _finish_ioi(
    analysis: CausalAnalysis, circuit: IOICircuitResult, out: Path, circuit_out: Path, as_json: bool
) -> None:
    """Write the page and the circuit file, then print the answer (or everything, with --json)."""
    from circuitscope.report.ioi_answer import answer_paragraph
    from circuitscope.report.ioi_circuit import ioi_report

    writes = Writes(as_json)
    path = writes.attempt("the HTML report", out, lambda: ioi_report(analysis, circuit).write(out))
    saved = circuit.circuit
    circuit_path = (
        None if saved is None else writes.attempt("the circuit file", circuit_out, lambda: saved.save(circuit_out))
    )
    answer = answer_paragraph(circuit)
    if as_json:
        writes.emit_json(
            analysis.to_json()
            | {"report": path, "answer": answer, "ioi_circuit": circuit.to_json(), "circuit_file": circuit_path}
        )
        return
    for warning in circuit.warnings:
        typer.echo(f"warning: {warning}", err=True)
    _print_causal(analysis)
    typer.echo(answer)
    _print_written([path, circuit_path], analysis.seconds + circuit.seconds)
    writes.done()


_CONFIG_OPTIONS = {"k_std": "--k-std", "max_heads": "--max-heads", "n_prompts": "--circuit-prompts",
                   "n_reference": "--n-reference", "batch_size": "--batch-size"}  # fmt: skip


def _circuit_config(
    k_std: float, max_heads: int, n_prompts: int, n_reference: int, seed: int, batch_size: int
) -> IOICircuitConfig:
    """The circuit search's settings, checked by their own dataclasses (worded with the options) before any
    model loads."""
    from circuitscope.circuits.ioi.result import ThresholdRule
    from circuitscope.circuits.ioi.run import IOICircuitConfig

    try:
        rule = ThresholdRule(k_std=k_std, max_heads=max_heads)
        return IOICircuitConfig(
            n_prompts=n_prompts, seed=seed, rule=rule, n_reference=n_reference, batch_size=batch_size
        )
    except ValueError as err:
        message = str(err)
        for field, option in _CONFIG_OPTIONS.items():
            message = message.replace(field, option)
        raise OptionError(message) from err


def _causal(hooked: HookedModel, model: str, n_prompts: int, seed: int, corruption: str, positional: int,
            batch_size: int) -> CausalAnalysis:  # fmt: skip
    from circuitscope.analysis.causal import causal_analysis
    from circuitscope.tasks.ioi import IOIConfig, ioi_task

    task = ioi_task(hooked, IOIConfig(n_prompts=n_prompts, seed=seed, corruption=corruption))  # type: ignore[arg-type]
    positional_task = ioi_task(
        hooked,
        IOIConfig(n_prompts=min(n_prompts, positional), seed=seed, corruption=corruption, templates="one"),  # type: ignore[arg-type]
    )
    return causal_analysis(hooked, task, model_name=model, positional_task=positional_task, batch_size=batch_size)


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
    quick: Annotated[
        bool, typer.Option("--quick", help="Only the causal analysis (logit lens, DLA, patching): no circuit.")
    ] = False,
    k_std: Annotated[
        float, typer.Option("--k-std", help="A head joins a class when its score is this many std from the mean.")
    ] = 2.0,
    max_heads: Annotated[int, typer.Option("--max-heads", help="At most this many heads per class.")] = 6,
    circuit_prompts: Annotated[
        int, typer.Option("--circuit-prompts", help="IOI prompts every path-patching step of the circuit search uses.")
    ] = 16,
    n_reference: Annotated[
        int, typer.Option("--n-reference", help="ABC prompts per template that mean-ablated heads average over.")
    ] = 4,
    out: OutOpt = Path("reports/ioi.html"),
    circuit_out: Annotated[
        Path | None,
        typer.Option("--circuit-out", help="Where to save the circuit file (default: next to --out, .circuit.json)."),
    ] = None,
    batch_size: BatchRowsOpt = 256,
    as_json: JsonFlag = False,
) -> None:
    """Indirect-object identification (Wang et al. 2022): the IOI circuit class by class beside GPT-2 small's,
    then which components make the model say the IO (--quick: only the latter)."""
    with reporting_errors(as_json):
        check_choice(corruption, Corruption, "--corruption")
        config = _circuit_config(k_std, max_heads, circuit_prompts, n_reference, seed, batch_size)
        check_output_file(out, "--out")
        saved_to = circuit_out or out.with_name(f"{out.stem}.circuit.json")
        if not quick:
            check_output_file(saved_to, "--circuit-out", "ioi.circuit.json")
        hooked = load_model(model)
        analysis = _causal(hooked, model, n_prompts, seed, corruption, positional, batch_size)
        circuit = None if quick else _circuit(hooked, model, config)
    if circuit is None:
        _finish(analysis, out, as_json)
    else:
        _finish_ioi(analysis, circuit, out, saved_to, as_json)


def _circuit(hooked: HookedModel, model: str, config: IOICircuitConfig) -> IOICircuitResult:
    from circuitscope.circuits.ioi.run import ioi_circuit

    with stages("report ioi") as on_progress:
        return ioi_circuit(hooked, config, model_name=model, on_progress=on_progress)


@report_app.command("task")
def task(
    name: Annotated[
        str | None,
        typer.Option("--task", help=f"A built-in task ({', '.join(TASK_NAMES)}) or a JSONL file of prompt pairs."),
    ] = None,
    pairs: Annotated[
        Path | None,
        typer.Option("--pairs", help='JSONL file: {"clean", "corrupted", "correct", "incorrect"} per line.'),
    ] = None,
    model: ModelOpt = DEFAULT_MODEL,
    n_prompts: Annotated[int, typer.Option("--n-prompts", min=2, help="Prompt pairs of a built-in task.")] = 32,
    seed: SeedOpt = 0,
    out: OutOpt = Path("reports/task.html"),
    batch_size: BatchRowsOpt = 256,
    as_json: JsonFlag = False,
) -> None:
    """The same report for a built-in task (--task) or your own prompt pairs (--pairs)."""
    from circuitscope.analysis.causal import causal_analysis
    from circuitscope.tasks.library import check_task_spec, resolve_task

    with reporting_errors(as_json):
        spec = _task_spec(name, pairs)
        check_task_spec(spec)
        check_output_file(out, "--out")
        hooked = load_model(model)
        loaded = resolve_task(hooked, spec, n_prompts=n_prompts, seed=seed)
        analysis = causal_analysis(hooked, loaded, model_name=model, batch_size=batch_size)
    _finish(analysis, out, as_json)


def _task_spec(name: str | None, pairs: Path | None) -> str:
    """The task of --task or --pairs (exactly one of them), refused before any model loads."""
    from circuitscope.tasks.task import TaskError

    if name is not None and pairs is not None:
        raise OptionError(f"give the task once: --task {name} or --pairs {pairs}, not both")
    if pairs is not None:
        if not pairs.is_file():
            raise TaskError(
                f"--pairs {pairs} is not a file: give a JSONL file with one "
                '{"clean", "corrupted", "correct", "incorrect"} object per line'
            )
        return str(pairs)
    if name is None:
        raise OptionError(f"give a task: --task NAME ({', '.join(TASK_NAMES)}) or --pairs FILE.jsonl")
    return name


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")
