"""``circuitscope patch``: activation patching of one target over a task, as a table, JSON and an HTML heatmap.

Under ``torchrun`` every rank runs the command: the ranks are checked to have the same options before
the model loads, the forward passes of the sweep are split across them, and rank 0 prints and writes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import torch
import typer

from circuitscope.cli._launch import across_ranks, is_main
from circuitscope.cli._options import BatchOpt, JsonFlag, ModelOpt, SeedOpt, check_choice
from circuitscope.cli._output import reporting_errors
from circuitscope.cli._paths import Writes, check_output_file
from circuitscope.core.loading import DEFAULT_MODEL
from circuitscope.tasks.library import TASK_NAMES

if TYPE_CHECKING:
    from circuitscope.analysis.patching import PatchingResult
    from circuitscope.report.html import Report

TargetOpt = Annotated[
    str,
    typer.Option(
        "--target",
        help="What to patch: resid_pre, attn_out, mixer_out, mlp_out, head_out, head_out_by_pos, q, k, v or pattern.",
    ),
]
TaskOpt = Annotated[
    str,
    typer.Option(
        "--task",
        help=f"A built-in task ({', '.join(TASK_NAMES)}; see `circuitscope tasks`), or a JSONL file of prompt pairs.",
    ),
]
PromptsOpt = Annotated[
    int, typer.Option("--n-prompts", min=1, help="Prompt pairs of a built-in task (a JSONL file gives its own).")
]
PatchOutOpt = Annotated[Path | None, typer.Option("--out", help="Also write an HTML heatmap of the scores here.")]
TopOpt = Annotated[int, typer.Option("--top", min=1, help="Components listed, highest score first.")]


# Keyword options one per line, each its own documented knob: alike in shape to other entry points, on purpose.
@across_ranks  # under torchrun the ranks split the patched forward passes; rank 0 prints and writes
@torch.no_grad()  # scoped to the command: no process-wide autograd switch
def patch(
    model: ModelOpt = DEFAULT_MODEL,
    task: TaskOpt = "ioi",
    target: TargetOpt = "head_out",
    n_prompts: PromptsOpt = 8,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 256,
    top: TopOpt = 10,
    out: PatchOutOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Patch each component of --target from the clean into the corrupted run (1 = clean, 0 = corrupted)."""
    from circuitscope.analysis.patching import PATCH_TARGETS, activation_patching
    from circuitscope.core.loading import load_model
    from circuitscope.progress import stages
    from circuitscope.tasks.library import check_task_spec, resolve_task

    with reporting_errors(as_json, ValueError):
        check_choice(target, PATCH_TARGETS, "--target", error=ValueError)
        check_task_spec(task)
        if out is not None:
            check_output_file(out, "--out")
    with reporting_errors(as_json):
        hooked = load_model(model)
        loaded = resolve_task(hooked, task, n_prompts=n_prompts, seed=seed)
        t0 = time.perf_counter()
        with stages("patch") as report:  # progress on stderr, also under --json
            result = activation_patching(hooked, loaded, target, batch_size=batch_size, on_progress=report)  # type: ignore[arg-type]  # checked above
        seconds = time.perf_counter() - t0
    if not is_main():
        return
    writes = Writes(as_json)
    path = writes.attempt("the HTML heatmap", out, lambda: _page(result, model, task).write(out)) if out else None
    if as_json:
        writes.emit_json({"model": model, "task": task, "seconds": seconds, "report": path, **result.to_json()})
        return
    _print(result, model, task, seconds, top, path)
    writes.done()


def _page(result: PatchingResult, model: str, task: str) -> Report:
    from circuitscope.report.html import Report
    from circuitscope.report.patching import plot_patching

    page = Report(f"Activation patching: {result.target}", f"{model} · task {task} · metric {result.metric}")
    page.add_figure(f"{result.target}: normalised metric", plot_patching(result), "1 = clean run, 0 = corrupted run.")
    return page


def _print(result: PatchingResult, model: str, task: str, seconds: float, top: int, path: str | None) -> None:
    scores = result.scores.flatten()
    order = scores.argsort(descending=True)[:top]
    shape = result.scores.shape
    typer.echo(
        f"{model} · task {task} · {result.target} over {' x '.join(map(str, shape))} ({', '.join(result.axes)}) "
        f"in {seconds:.1f}s; metric {result.metric}: clean {result.clean_value:.3f}, "
        f"corrupted {result.corrupted_value:.3f}"
    )
    for flat in order.tolist():
        index = torch.unravel_index(torch.tensor(flat), shape)
        where = ", ".join(f"{axis} {result.labels[axis][int(i)]}" for axis, i in zip(result.axes, index, strict=True))
        typer.echo(f"  {float(scores[flat]):7.3f}  {where}")
    if path:
        typer.echo(f"heatmap: {path}")


def register(app: typer.Typer) -> None:
    app.command("patch")(patch)
