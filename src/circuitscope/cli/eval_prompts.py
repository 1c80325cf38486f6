"""``circuitscope eval-prompts``: questions under several prompt framings, scored by answer log-probabilities."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from circuitscope.cli._paths import Writes, check_output_file
from circuitscope.cli.output import fail
from circuitscope.core.loading import DEFAULT_MODEL
from circuitscope.errors import CircuitscopeError

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout.")]


def eval_prompts(
    file: Annotated[Path, typer.Argument(help="JSONL: {'question', 'options', 'answer'} per line.")],
    model: Annotated[str, typer.Option(help="Hub id, model folder, .gguf, or the embedded default.")] = DEFAULT_MODEL,
    framing: Annotated[
        list[str] | None,
        typer.Option(help="NAME=TEMPLATE with {question}; repeat for several (the first is the baseline)."),
    ] = None,
    framings_file: Annotated[Path | None, typer.Option(help="JSON object {name: template}.")] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the 95% intervals.", min=100)] = 2000,
    out: Annotated[Path, typer.Option(help="Where to write the HTML report.")] = Path("eval_prompts_report.html"),
    as_json: JsonFlag = False,
) -> None:
    """Evaluate how prompt framings change answers: accuracy, p(answer) and effect vs the first framing, with CIs."""
    import torch

    from circuitscope.core.loading import load_model
    from circuitscope.evals import (
        DEFAULT_FRAMINGS,
        EvalSetError,
        Framing,
        evaluate_prompt_variants,
        load_eval_items,
        plot_prompt_variants,
    )

    try:
        items = load_eval_items(file) if file.is_file() else None
        if items is None:
            raise EvalSetError(f"{file} is not a file")
        framings = []
        if framings_file is not None:
            if not framings_file.is_file():
                raise EvalSetError(
                    f"--framings-file {framings_file} is not a file: give a JSON object {{name: template}}"
                )
            spec = json.loads(framings_file.read_text(encoding="utf-8"))
            if not isinstance(spec, dict):
                raise EvalSetError(f"{framings_file} must hold a JSON object {{name: template}}")
            framings += [Framing(str(k), str(v)) for k, v in spec.items()]
        for f in framing or []:
            if "=" not in f:
                raise EvalSetError(f"--framing must be NAME=TEMPLATE, got {f!r}")
            name, template = f.split("=", 1)
            framings.append(Framing(name.strip(), template.replace("\\n", "\n")))
        framings = framings or list(DEFAULT_FRAMINGS)
        check_output_file(out, "--out")
        hooked = load_model(model)
        with torch.no_grad():
            result = evaluate_prompt_variants(hooked, items, framings, n_boot=n_boot)
    except (CircuitscopeError, json.JSONDecodeError) as err:
        raise fail(err, as_json) from err
    from circuitscope.report.html import Report

    table = result.table()
    report = Report("Prompt-variant evaluation", f"{model} · {file.name} · {len(items)} questions")
    report.add_figure("p(answer) by framing", plot_prompt_variants(result))
    report.add_table(
        "Effect table (95% bootstrap intervals; effect is paired, vs the first framing)",
        ["framing", "accuracy", "acc CI", "p(answer)", "p CI", "margin", "effect vs baseline", "effect CI"],
        [
            [
                r["framing"],
                r["accuracy"],
                f"[{r['accuracy_ci95'][0]:.3f}, {r['accuracy_ci95'][1]:.3f}]",
                r["p_answer"],
                f"[{r['p_answer_ci95'][0]:.3f}, {r['p_answer_ci95'][1]:.3f}]",
                r["margin"],
                r["effect_p_answer_vs_baseline"],
                f"[{r['effect_ci95'][0]:+.3f}, {r['effect_ci95'][1]:+.3f}]",
            ]
            for r in table
        ],
    )
    report.add_table("Framings", ["name", "template"], [[f.name, f.template] for f in framings])
    writes = Writes(as_json)
    path = writes.attempt("the HTML report", out, lambda: report.write(out))
    payload = {"model": model, **result.to_dict(), "report": path}
    if as_json:
        writes.emit_json(payload)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"{len(items)} questions")
    for col in ("framing", "accuracy", "p(answer) [95% CI]", "effect vs baseline [95% CI]"):
        t.add_column(col)
    for r in table:
        t.add_row(
            escape(r["framing"]),
            f"{r['accuracy']:.3f}",
            f"{r['p_answer']:.3f} [{r['p_answer_ci95'][0]:.3f}, {r['p_answer_ci95'][1]:.3f}]",
            f"{r['effect_p_answer_vs_baseline']:+.3f} [{r['effect_ci95'][0]:+.3f}, {r['effect_ci95'][1]:+.3f}]",
        )
    Console().print(t)
    if path is not None:
        Console().print(f"report: {path}", markup=False)
    writes.done()


def register(app: typer.Typer) -> None:
    app.command("eval-prompts")(eval_prompts)
