"""``circuitscope circuit``: find a circuit (EAP, EAP-IG, ACDC), save it as JSON, draw it as HTML.

``circuitscope circuit-eval``: the faithfulness of a saved circuit file on a model and task.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from circuitscope.cli._paths import Writes, check_output_file
from circuitscope.cli.output import emit_json, fail
from circuitscope.core.loading import DEFAULT_MODEL, load_model
from circuitscope.errors import CircuitscopeError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel
    from circuitscope.tasks.task import Task

ModelOpt = Annotated[str, typer.Option("--model", help=f"Hub id, model folder, .gguf file, or {DEFAULT_MODEL!r}.")]
TaskOpt = Annotated[
    str, typer.Option("--task", help='"ioi", or a JSONL file of {"clean", "corrupted", "correct", "incorrect"} lines.')
]
PromptsOpt = Annotated[int, typer.Option("--n-prompts", min=1, help="IOI prompt pairs (for --task ioi).")]
AblationOpt = Annotated[
    str, typer.Option("--ablation", help="What ablated edges carry: corrupted, mean, resample or zero.")
]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Prompts per forward pass.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the results as JSON to stdout.")]


def _check_task(task: str) -> None:
    """Refuse a task that is neither 'ioi' nor an existing file, before the model loads."""
    from circuitscope.circuits.graph import CircuitError
    from circuitscope.tasks.task import TaskError

    if task == "ioi" or Path(task).is_file():
        return
    if Path(task).suffix == ".jsonl":
        raise TaskError(f"task file {task!r} does not exist: give the path of a JSONL file of prompt pairs, or 'ioi'")
    raise CircuitError(f"unknown task {task!r}: use 'ioi' or the path of a JSONL file of prompt pairs")


def _check_options(method: str, ablation: str, target: float, threshold: float, task: str) -> None:
    """Every option that can be checked without the model, checked before it loads."""
    from circuitscope.circuits.discover import METHODS
    from circuitscope.circuits.graph import CircuitError
    from circuitscope.circuits.reference import check_ablation

    if method not in METHODS:
        raise CircuitError(f"unknown circuit discovery method {method!r}; choose one of {', '.join(METHODS)}")
    check_ablation(ablation)
    if not 0 < target <= 1.5:
        raise CircuitError(f"--target (normalized faithfulness) must be in (0, 1.5], got {target}")
    if not threshold >= 0 or math.isinf(threshold):
        raise CircuitError(f"--threshold must be a finite number >= 0, got {threshold}")
    _check_task(task)


def _task(model: HookedModel, task: str, n_prompts: int, seed: int) -> Task:
    from circuitscope.circuits.graph import CircuitError

    if task == "ioi":
        from circuitscope.tasks.ioi import IOIConfig, ioi_task

        return ioi_task(model, IOIConfig(n_prompts=n_prompts, seed=seed))
    path = Path(task)
    if path.suffix != ".jsonl" and not path.exists():
        raise CircuitError(f"unknown task {task!r}: use 'ioi' or the path of a JSONL file of prompt pairs")
    from circuitscope.tasks.jsonl import load_jsonl_task

    return load_jsonl_task(model, path)


def circuit(
    model: ModelOpt = DEFAULT_MODEL,
    task: TaskOpt = "ioi",
    method: Annotated[str, typer.Option("--method", help="eap, eap-ig or acdc.")] = "eap-ig",
    steps: Annotated[int, typer.Option("--steps", min=1, help="Integrated-gradient steps for eap-ig.")] = 5,
    n_prompts: PromptsOpt = 32,
    ablation: AblationOpt = "corrupted",
    edges: Annotated[
        int | None, typer.Option("--edges", min=0, help="Keep this many top edges (default: reach --target).")
    ] = None,
    target: Annotated[
        float, typer.Option("--target", help="Keep the fewest top edges whose normalized faithfulness reaches this.")
    ] = 0.8,
    threshold: Annotated[float, typer.Option("--threshold", help="ACDC: KL increase allowed per removed edge.")] = 0.01,
    seed: Annotated[int, typer.Option(help="Seed of the prompts and of resampling.")] = 0,
    out: Annotated[Path, typer.Option("--out", help="Circuit JSON file to write.")] = Path("circuit.json"),
    html: Annotated[Path | None, typer.Option("--html", help="Also write an HTML view of the circuit.")] = None,
    curve: Annotated[
        bool, typer.Option("--curve/--no-curve", help="Measure faithfulness against the number of edges kept.")
    ] = True,
    batch_size: BatchOpt = 16,
    as_json: JsonFlag = False,
) -> None:
    """Find the circuit behind a task: score every edge of the model's graph, keep the important ones."""
    from circuitscope.circuits.discover import discover_circuit
    from circuitscope.circuits.graph import CircuitError, Graph
    from circuitscope.progress import stages

    try:
        _check_options(method, ablation, target, threshold, task)
        check_output_file(out, "--out", "circuit.json")
        if html is not None:
            check_output_file(html, "--html")
        hooked = load_model(model)
        n_total = Graph.from_config(hooked.cfg).n_edges
        if edges is not None and method != "acdc" and edges > n_total:
            raise CircuitError(f"--edges {edges} is more than the model's graph has; give at most {n_total}")
        loaded = _task(hooked, task, n_prompts, seed)
        t0 = time.perf_counter()
        with stages("circuit") as report:  # progress on stderr, also under --json
            found = discover_circuit(
                hooked, loaded, method, steps=steps, ablation=ablation, n_edges=edges, target=target,  # type: ignore[arg-type]
                threshold=threshold, batch_size=batch_size, seed=seed, model_name=model, curve=curve, progress=report,
            )  # fmt: skip
        seconds = time.perf_counter() - t0
        forward = _forward_seconds(hooked, loaded, batch_size)
        c = found.circuit
        c.info["forward_seconds"] = forward
        c.info["total_seconds"] = seconds
    except CircuitscopeError as err:
        raise fail(err, as_json) from err
    writes = Writes(as_json)
    path = writes.attempt("the circuit", out, lambda: c.save(out))
    html_path = None
    if html is not None:
        from circuitscope.report.circuit import circuit_report

        html_path = writes.attempt("the HTML view", html, lambda: circuit_report(c, found.curve).write(html))
    payload = {
        "circuit": path,
        "html": html_path,
        "model": model,
        "task": c.task,
        "method": c.method,
        "n_edges": c.n_edges,
        "n_edges_total": c.graph.n_edges,
        "nodes": c.nodes,
        "edges": [{"sender": s, "receiver": r, "score": v} for s, r, v in c.edge_list()],
        "faithfulness": c.info.get("faithfulness"),
        "curve": found.curve.to_dict() if found.curve else None,
        "seconds": {"scoring": c.info.get("seconds"), "total": seconds, "one_forward_pass": forward},
    }
    if as_json:
        writes.emit_json(payload)
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    faith = c.info.get("faithfulness") or {}
    norm = faith.get("normalized")
    console.print(
        f"[bold]{c.method}[/] circuit for {escape(str(c.task['name']))} on {escape(model)}: "
        f"{c.n_edges} of {c.graph.n_edges} edges, "
        f"{len(c.nodes)} nodes" + (f"; faithfulness {norm:.2f}" if isinstance(norm, float) else "")
    )
    if c.method != "acdc":
        ratio = float(c.info["seconds"]) / forward if forward > 0 else float("nan")
        console.print(f"scoring took {c.info['seconds']:.1f} s = {ratio:.1f} x one forward pass ({forward:.2f} s)")
    for s, r, v in c.edge_list()[:10]:
        console.print(f"  {s:>8} -> {r:<14} {v:+.4f}")
    written = [escape(p) for p in (path, html_path) if p]
    if written:
        console.print("wrote " + " and ".join(written))
    writes.done()


def _forward_seconds(model: HookedModel, task: Task, batch_size: int) -> float:
    """Wall time of one plain forward pass (full logits) over the task's clean prompts."""
    import torch

    t0 = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(task), batch_size):
            model(task.clean_tokens[start : start + batch_size])
    return time.perf_counter() - t0


def circuit_eval(
    path: Annotated[Path, typer.Argument(help="A circuit JSON file written by `circuitscope circuit`.")],
    model: ModelOpt = DEFAULT_MODEL,
    task: TaskOpt = "ioi",
    n_prompts: PromptsOpt = 32,
    ablation: Annotated[
        str | None, typer.Option("--ablation", help="corrupted, mean, resample or zero (default: the circuit's).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the prompts and of resampling.")] = 0,
    batch_size: BatchOpt = 16,
    as_json: JsonFlag = False,
) -> None:
    """Faithfulness of a saved circuit: only its edges kept, every other edge ablated at its receiver."""
    from circuitscope.circuits.circuit import Circuit
    from circuitscope.circuits.faithfulness import faithfulness
    from circuitscope.circuits.graph import CircuitError

    try:
        if not path.is_file():
            raise CircuitError(f"no circuit file at {path}: give a circuit JSON file written by `circuitscope circuit`")
        if ablation is not None:
            from circuitscope.circuits.reference import check_ablation

            check_ablation(ablation)
        _check_task(task)
        hooked = load_model(model)
        saved = Circuit.load(path, model=hooked)
        loaded = _task(hooked, task, n_prompts, seed)
        result = faithfulness(hooked, loaded, saved, ablation=ablation, batch_size=batch_size, seed=seed)  # type: ignore[arg-type]
    except CircuitscopeError as err:
        raise fail(err, as_json) from err
    payload = {"circuit": str(path), "model": model, **result.to_dict()}
    if as_json:
        emit_json(payload)
        return
    typer.echo(
        f"{saved.n_edges} edges: metric {result.value:.4f} (full {result.full:.4f}, no edges {result.ablated:.4f}); "
        f"normalized faithfulness {result.normalized:.3f}"
    )


def register(app: typer.Typer) -> None:
    app.command("circuit")(circuit)
    app.command("circuit-eval")(circuit_eval)
