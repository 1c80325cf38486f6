"""``circuitscope eval-prompts``: questions under several prompt framings, scored by answer log-probabilities."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from circuitscope.cli._options import JsonFlag, ModelOpt, OutOpt
from circuitscope.cli._output import reporting_errors
from circuitscope.cli._paths import Writes, check_output_file
from circuitscope.core.loading import DEFAULT_MODEL

if TYPE_CHECKING:
    from circuitscope.evals import Framing, FramingScore

_FRAMING_HELP = "NAME=TEMPLATE with {question}; repeat for several (the first is the baseline)."
FramingOpt = Annotated[list[str] | None, typer.Option(help=_FRAMING_HELP)]


def eval_prompts(
    file: Annotated[Path, typer.Argument(help="JSONL: {'question', 'options', 'answer'} per line.")],
    model: ModelOpt = DEFAULT_MODEL,
    framing: FramingOpt = None,
    framings_file: Annotated[Path | None, typer.Option(help="JSON object {name: template}.")] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the 95% intervals.", min=100)] = 2000,
    out: OutOpt = Path("eval_prompts_report.html"),
    as_json: JsonFlag = False,
) -> None:
    """Evaluate how prompt framings change answers: accuracy, p(answer) and effect vs the first framing, with CIs."""
    import torch

    from circuitscope.core.loading import load_model
    from circuitscope.evals import EvalSetError, evaluate_prompt_variants, load_eval_items
    from circuitscope.progress import stages
    from circuitscope.report.evals import prompt_variants_report

    with reporting_errors(as_json, json.JSONDecodeError):
        items = load_eval_items(file) if file.is_file() else None
        if items is None:
            raise EvalSetError(f"{file} is not a file")
        framings = _framings(framing or [], framings_file)
        check_output_file(out, "--out")
        hooked = load_model(model)
        with torch.no_grad(), stages("eval-prompts") as on_progress:  # progress on stderr, also under --json
            result = evaluate_prompt_variants(hooked, items, framings, n_boot=n_boot, on_progress=on_progress)
    report = prompt_variants_report(result, framings, model=model, source=file.name, n_questions=len(items))
    writes = Writes(as_json)
    path = writes.attempt("the HTML report", out, lambda: report.write(out))
    if as_json:
        writes.emit_json({"model": model, **result.to_dict(), "report": path})
        return
    _print(result.scores(), len(items), path)
    writes.done()


def _framings(framing: list[str], framings_file: Path | None) -> list[Framing]:
    """The framings of ``--framings-file``, then of each ``--framing NAME=TEMPLATE``; the shipped ones if none."""
    from circuitscope.evals import DEFAULT_FRAMINGS, EvalSetError, Framing

    framings = []
    if framings_file is not None:
        if not framings_file.is_file():
            raise EvalSetError(f"--framings-file {framings_file} is not a file: give a JSON object {{name: template}}")
        spec = json.loads(framings_file.read_text(encoding="utf-8"))
        if not isinstance(spec, dict):
            raise EvalSetError(f"{framings_file} must hold a JSON object {{name: template}}")
        framings += [Framing(str(k), str(v)) for k, v in spec.items()]
    for f in framing:
        if "=" not in f:
            raise EvalSetError(f"--framing must be NAME=TEMPLATE, got {f!r}")
        name, template = f.split("=", 1)
        framings.append(Framing(name.strip(), template.replace("\\n", "\n")))
    return framings or list(DEFAULT_FRAMINGS)


def _print(scores: list[FramingScore], n_questions: int, path: str | None) -> None:
    """Accuracy, p(answer) and the effect against the baseline per framing, with their intervals."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"{n_questions} questions")
    for col in ("framing", "accuracy", "p(answer) [95% CI]", "effect vs baseline [95% CI]"):
        t.add_column(col)
    for r in scores:
        t.add_row(
            escape(r.framing),
            f"{r.accuracy:.3f}",
            f"{r.p_answer:.3f} [{r.p_answer_ci95[0]:.3f}, {r.p_answer_ci95[1]:.3f}]",
            f"{r.effect_p_answer_vs_baseline:+.3f} [{r.effect_ci95[0]:+.3f}, {r.effect_ci95[1]:+.3f}]",
        )
    Console().print(t)
    if path is not None:
        Console().print(f"report: {path}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("eval-prompts")(eval_prompts)
