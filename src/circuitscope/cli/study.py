"""``circuitscope study NAME``: a hypothesis tested in one command, with its evidence, intervals and answer.

Each study writes one HTML report (``--out``: the hypothesis, the method, the numbers with 95%
bootstrap intervals and a one-paragraph answer) and prints the answer, or everything as JSON with
``--json``. The configuration is checked before the model loads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from circuitscope.cli._config_options import Configured, config_options
from circuitscope.cli._options import JsonFlag, ModelOpt, OutOpt
from circuitscope.cli._output import reporting_errors
from circuitscope.cli._paths import Writes, check_output_file
from circuitscope.core.loading import DEFAULT_MODEL
from circuitscope.studies import AgreementFramingConfig, TruthFramingConfig

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel
    from circuitscope.progress import OnProgress
    from circuitscope.report.html import Report

study_app = typer.Typer(help="Studies: a hypothesis tested with its evidence and uncertainty.", no_args_is_help=True)


def _run(
    name: str,
    model: str,
    out: Path,
    as_json: bool,
    study: Callable[[HookedModel, OnProgress], Any],
    report: Callable[[Any], Report],
) -> None:
    """Load the model, run the study with a progress bar, write its report, print its answer (or JSON)."""
    import torch
    from rich.console import Console

    from circuitscope.core.loading import load_model
    from circuitscope.progress import stages

    with reporting_errors(as_json):
        check_output_file(out, "--out")
        hooked = load_model(model)
        with torch.no_grad(), stages(f"study {name}") as on_progress:  # progress on stderr, also under --json
            result = study(hooked, on_progress)
    writes = Writes(as_json)
    path = writes.attempt("the HTML report", out, lambda: report(result).write(out))
    if as_json:
        writes.emit_json({"model": model, "study": name, **result.to_json(), "report": path})
        return
    Console().print(result.answer(), markup=False)
    if path:
        Console(stderr=True).print(f"report: {path}", markup=False)
    writes.done()


@study_app.command("truth-framing")
@config_options(TruthFramingConfig, "n_per_topic>=2 n_boot>=100 seed")
def truth_framing(
    model: ModelOpt = DEFAULT_MODEL,
    persona: Annotated[
        list[str] | None,
        typer.Option(help="A persona, repeatable; the first is the baseline (default: truthful, friendly and ...)."),
    ] = None,
    template: Annotated[str | None, typer.Option(help="The prompt, with {persona} and {statement} once each.")] = None,
    *,
    options: Configured[TruthFramingConfig],
    out: OutOpt = Path("study-truth-framing.html"),
    as_json: JsonFlag = False,
) -> None:
    """Is a model prompted to be "X and truthful" less truthful than one prompted to be "truthful"?"""
    from circuitscope.report.studies import truth_framing_report
    from circuitscope.studies import truth_framing_study

    with reporting_errors(as_json):
        given: dict[str, Any] = {} if not persona else {"personas": tuple(persona)}
        if template is not None:
            given["template"] = template.replace("\\n", "\n")
        config = options.build(**given)
    run = lambda m, p: truth_framing_study(m, config, on_progress=p)  # noqa: E731
    _run("truth-framing", model, out, as_json, run, lambda r: truth_framing_report(r, model=model))


@study_app.command("agreement-framing")
@config_options(AgreementFramingConfig, "affirmative disconfirming per_kind>=1 n_boot>=100 seed")
def agreement_framing(
    model: ModelOpt = DEFAULT_MODEL,
    *,
    options: Configured[AgreementFramingConfig],
    out: OutOpt = Path("study-agreement-framing.html"),
    as_json: JsonFlag = False,
) -> None:
    """Does a model conform to a question's affirmative ("..., isn't it?") or disconfirming framing?"""
    from circuitscope.report.studies import agreement_framing_report
    from circuitscope.studies import agreement_framing_study

    with reporting_errors(as_json):
        typed = {k: v.replace("\\n", "\n") for k in ("affirmative", "disconfirming") if (v := options.values[k])}
        config = AgreementFramingConfig(**{**options.values, **typed})  # the typed templates replace the given ones
    run = lambda m, p: agreement_framing_study(m, config, on_progress=p)  # noqa: E731
    _run("agreement-framing", model, out, as_json, run, lambda r: agreement_framing_report(r, model=model))


def register(app: typer.Typer) -> None:
    app.add_typer(study_app, name="study")
