"""``circuitscope tasks``: the built-in tasks, and with ``--check`` how well a model does each one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from circuitscope.cli._options import BatchOpt, JsonFlag, ModelOpt, SeedOpt
from circuitscope.cli._output import emit_json, reporting_errors
from circuitscope.core.loading import DEFAULT_MODEL

if TYPE_CHECKING:
    from circuitscope.tasks.library import TaskSurvey

CheckFlag = Annotated[
    bool, typer.Option("--check", help="Measure the model's clean accuracy and logit difference on every task.")
]
PromptsOpt = Annotated[int, typer.Option("--n-prompts", min=1, help="Prompt pairs per task (with --check).")]


# Same shape as src/circuitscope/cli/graph.py:graph on purpose: a typer command's options are typed parameters,
# one a line (the shared option types of cli/_options.py with their defaults).
def tasks(
    model: ModelOpt = DEFAULT_MODEL,
    check: CheckFlag = False,
    n_prompts: PromptsOpt = 32,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 16,
    as_json: JsonFlag = False,
) -> None:
    """List the built-in tasks (usable as --task NAME); with --check, measure MODEL on each."""
    from circuitscope.tasks.library import TASK_DESCRIPTIONS, TASK_NAMES

    if not check:
        if as_json:
            emit_json({"tasks": [{"name": n, "description": TASK_DESCRIPTIONS[n]} for n in TASK_NAMES]})
            return
        for name in TASK_NAMES:
            typer.echo(f"{name:<22} {TASK_DESCRIPTIONS[name]}")
        return
    from circuitscope.core.loading import load_model
    from circuitscope.progress import stages
    from circuitscope.tasks.library import survey_tasks

    with reporting_errors(as_json):
        hooked = load_model(model)
        with stages("tasks") as report:
            survey = survey_tasks(hooked, n_prompts=n_prompts, seed=seed, batch_size=batch_size, on_progress=report)
    if as_json:
        emit_json({"model": model, **survey.to_json()})
        return
    _print(survey, model)


def _print(survey: TaskSurvey, model: str) -> None:
    """One row per task: accuracy (correct beats incorrect), top-1, mean logit differences, a near-chance mark."""
    typer.echo(f"{model}: {survey.n_prompts} pairs per task, seed {survey.seed}")
    typer.echo(f"{'task':<22} {'accuracy':>8} {'top-1':>6} {'logit diff':>10} {'corrupted':>9}")
    for c in survey.checks:
        mark = "  near chance" if c.near_chance else ""
        numbers = f"{c.accuracy:>8.0%} {c.top1:>6.0%} {c.logit_diff:>+10.2f} {c.corrupted_logit_diff:>+9.2f}"
        typer.echo(f"{c.task:<22} {numbers}{mark}")
    for name, why in survey.unavailable.items():
        typer.echo(f"{name:<22} cannot be built: {why}")


def register(app: typer.Typer) -> None:
    app.command("tasks")(tasks)
