"""``circuitscope circuit``: find a circuit (EAP, EAP-IG, ACDC), save it as JSON, draw it as HTML.

``circuitscope circuit-eval``: the faithfulness of a saved circuit file on a model and task.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from circuitscope.cli._launch import across_ranks, is_main
from circuitscope.cli._options import BatchOpt, HtmlOpt, JsonFlag, ModelOpt, SeedOpt
from circuitscope.cli._output import emit_json, reporting_errors
from circuitscope.cli._paths import Writes, check_output_file
from circuitscope.core.loading import DEFAULT_MODEL, load_model
from circuitscope.tasks.library import TASK_NAMES

if TYPE_CHECKING:
    from circuitscope.circuits.circuit import Circuit
    from circuitscope.circuits.discover import Discovery
    from circuitscope.core.hooked_model import HookedModel
    from circuitscope.tasks.task import Task

TaskOpt = Annotated[
    str,
    typer.Option(
        "--task",
        help=f"A built-in task ({', '.join(TASK_NAMES)}; see `circuitscope tasks`), or a JSONL file of "
        '{"clean", "corrupted", "correct", "incorrect"} lines.',
    ),
]
PromptsOpt = Annotated[
    int, typer.Option("--n-prompts", min=1, help="Prompt pairs of a built-in task (a JSONL file gives its own).")
]
AblationOpt = Annotated[
    str, typer.Option("--ablation", help="What ablated edges carry: corrupted, mean, resample or zero.")
]
EdgesOpt = Annotated[
    int | None, typer.Option("--edges", min=0, help="Keep this many top edges (default: reach --target).")
]
TargetOpt = Annotated[
    float, typer.Option("--target", help="Keep the fewest top edges whose normalized faithfulness reaches this.")
]
CurveOpt = Annotated[
    bool, typer.Option("--curve/--no-curve", help="Measure faithfulness against the number of edges kept.")
]


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


def _check_task(task: str) -> None:
    """The task library's check; an unknown name stays a CircuitError here, as it always was for these commands."""
    from circuitscope.circuits.graph import CircuitError
    from circuitscope.tasks.library import UnknownTaskError, check_task_spec

    try:
        check_task_spec(task)
    except UnknownTaskError as error:
        raise CircuitError(str(error)) from None


@across_ranks  # under torchrun the ranks share EAP's batches of prompts; rank 0 writes
def circuit(
    model: ModelOpt = DEFAULT_MODEL,
    task: TaskOpt = "ioi",
    method: Annotated[str, typer.Option("--method", help="eap, eap-ig or acdc.")] = "eap-ig",
    steps: Annotated[int, typer.Option("--steps", min=1, help="Integrated-gradient steps for eap-ig.")] = 5,
    n_prompts: PromptsOpt = 32,
    ablation: AblationOpt = "corrupted",
    edges: EdgesOpt = None,
    target: TargetOpt = 0.8,
    threshold: Annotated[float, typer.Option("--threshold", help="ACDC: KL increase allowed per removed edge.")] = 0.01,
    seed: SeedOpt = 0,
    out: Annotated[Path, typer.Option("--out", help="Circuit JSON file to write.")] = Path("circuit.json"),
    html: HtmlOpt = None,
    curve: CurveOpt = True,
    batch_size: BatchOpt = 16,
    as_json: JsonFlag = False,
) -> None:
    """Find the circuit behind a task: score every edge of the model's graph, keep the important ones."""
    from circuitscope.circuits.discover import discover_circuit
    from circuitscope.progress import stages
    from circuitscope.tasks.library import resolve_task

    with reporting_errors(as_json):
        _check_options(method, ablation, target, threshold, task)
        check_output_file(out, "--out", "circuit.json")
        if html is not None:
            check_output_file(html, "--html")
        hooked = load_model(model)
        _check_edges(hooked, edges, method)
        loaded = resolve_task(hooked, task, n_prompts=n_prompts, seed=seed)
        t0 = time.perf_counter()
        with stages("circuit") as report:  # progress on stderr, also under --json
            found = discover_circuit(
                hooked, loaded, method, steps=steps, ablation=ablation, n_edges=edges, target=target,  # type: ignore[arg-type]
                threshold=threshold, batch_size=batch_size, seed=seed, model_name=model, curve=curve,
                on_progress=report,
            )  # fmt: skip
        seconds = time.perf_counter() - t0
        forward = _forward_seconds(hooked, loaded, batch_size)
        found.circuit.info["forward_seconds"] = forward
        found.circuit.info["total_seconds"] = seconds
    if not is_main():
        return
    writes = Writes(as_json)
    path = writes.attempt("the circuit", out, lambda: found.circuit.save(out))
    html_path = None
    if html is not None:
        from circuitscope.report.circuit import circuit_report

        html_path = writes.attempt(
            "the HTML view", html, lambda: circuit_report(found.circuit, found.curve).write(html)
        )
    if as_json:
        writes.emit_json(_payload(found, model, path, html_path, seconds, forward))
        return
    _print(found.circuit, model, forward, [p for p in (path, html_path) if p])
    writes.done()


def _check_edges(hooked: HookedModel, edges: int | None, method: str) -> None:
    """``--edges`` checked against the model's graph, before any scoring."""
    from circuitscope.circuits.graph import CircuitError, Graph

    n_total = Graph.from_config(hooked.cfg).n_edges
    if edges is not None and method != "acdc" and edges > n_total:
        raise CircuitError(f"--edges {edges} is more than the model's graph has; give at most {n_total}")


def _payload(
    found: Discovery, model: str, path: str | None, html_path: str | None, seconds: float, forward: float
) -> dict[str, Any]:
    c = found.circuit
    return {
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


def _print(c: Circuit, model: str, forward: float, written: list[str]) -> None:
    """The circuit's size and faithfulness, the scoring time against one forward pass, the top edges."""
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
    if written:
        console.print("wrote " + " and ".join(escape(p) for p in written))


def _forward_seconds(model: HookedModel, task: Task, batch_size: int) -> float:
    """Wall time of one plain forward pass (full logits) over the task's clean prompts."""
    import torch

    from circuitscope.engine.batching import batch_slices

    t0 = time.perf_counter()
    with torch.no_grad():
        for rows in batch_slices(len(task), batch_size):
            model(task.clean_tokens[rows])
    return time.perf_counter() - t0


def circuit_eval(
    path: Annotated[Path, typer.Argument(help="A circuit JSON file written by `circuitscope circuit`.")],
    model: ModelOpt = DEFAULT_MODEL,
    task: TaskOpt = "ioi",
    n_prompts: PromptsOpt = 32,
    ablation: Annotated[
        str | None, typer.Option("--ablation", help="corrupted, mean, resample or zero (default: the circuit's).")
    ] = None,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 16,
    as_json: JsonFlag = False,
) -> None:
    """Faithfulness of a saved circuit: only its edges kept, every other edge ablated at its receiver."""
    from circuitscope.circuits import faithfulness
    from circuitscope.circuits.circuit import Circuit
    from circuitscope.circuits.graph import CircuitError
    from circuitscope.tasks.library import resolve_task

    with reporting_errors(as_json):
        if not path.is_file():
            raise CircuitError(f"no circuit file at {path}: give a circuit JSON file written by `circuitscope circuit`")
        if ablation is not None:
            from circuitscope.circuits.reference import check_ablation

            check_ablation(ablation)
        _check_task(task)
        hooked = load_model(model)
        saved = Circuit.load(path, model=hooked)
        loaded = resolve_task(hooked, task, n_prompts=n_prompts, seed=seed)
        result = faithfulness(hooked, loaded, saved, ablation=ablation, batch_size=batch_size, seed=seed)  # type: ignore[arg-type]
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
