"""``circuitscope experts``: how a mixture-of-experts model routes a corpus, layer by layer.

For each MoE layer: how often each expert is chosen (counts, share of the ``n_tokens * k`` choices), the
load balance, and the tokens that choose each expert with the highest router probability. The corpus is
the ``--text`` values and the non-empty lines of ``--file``, one forward pass per text.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import torch
import typer

from circuitscope.cli._options import JsonFlag, ModelArg, OptionalModelOpt, pick_model
from circuitscope.cli._output import reporting_errors
from circuitscope.cli._paths import Writes, check_output_file
from circuitscope.errors import OptionError

if TYPE_CHECKING:
    from circuitscope.analysis.experts import RoutingStats

TextsOpt = Annotated[
    list[str] | None, typer.Option("--text", help="A text to route (repeat for several).", show_default=False)
]
FileOpt = Annotated[
    Path | None, typer.Option("--file", help="A UTF-8 text file: each non-empty line is one more text.")
]
LayerOpt = Annotated[int | None, typer.Option("--layer", help="Only this MoE layer (default: every MoE layer).")]
TopOpt = Annotated[int, typer.Option("--top", help="Top tokens listed per expert.", min=1)]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Also write a self-contained HTML report here.")]


def corpus(texts: list[str] | None, file: Path | None) -> list[str]:
    """The texts of ``--text`` and ``--file``; an error before any model loads when there is none."""
    found = [t for t in texts or [] if t.strip()]
    if file is not None:
        if not file.is_file():
            raise OptionError(f"--file {file}: no such file; give a UTF-8 text file")
        found += [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not found:
        raise OptionError("no text to route: give --text 'some text' (repeatable) or --file PATH with text in it")
    return found


@torch.no_grad()  # scoped to the command: no process-wide autograd switch
def experts(
    model_arg: ModelArg = None,
    model_opt: OptionalModelOpt = None,
    texts: TextsOpt = None,
    file: FileOpt = None,
    layer: LayerOpt = None,
    top: TopOpt = 5,
    out: OutOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Routing statistics of a mixture-of-experts model over some text: expert load and top tokens per layer."""
    from circuitscope.report.experts import experts_report

    with reporting_errors(as_json):
        model = pick_model(model_opt, model_arg)
        corpus_texts = corpus(texts, file)
        if out is not None:
            check_output_file(out, "--out")
        stats = _analyse(model, corpus_texts, layer, top)
    writes = Writes(as_json)
    path = None
    if out is not None:
        path = writes.attempt("the HTML report", out, lambda: experts_report(stats, model, top).write(out))
    if as_json:
        writes.emit_json({"model": model, **stats.to_json(), "report": path})
        return
    _print(stats, model, top, path)
    writes.done()


def _analyse(model: str, texts: list[str], layer: int | None, top: int) -> RoutingStats:
    """Load the model, refuse a dense model or a layer without experts, then route every text."""
    from circuitscope.analysis.experts import routing_statistics
    from circuitscope.core.loading import load_model
    from circuitscope.core.moe import expert_layout
    from circuitscope.progress import stages, status

    with status(f"loading {model}"):
        hooked = load_model(model)
    layout = expert_layout(hooked, model)
    if layer is not None:
        layout.check(layer)
    with stages("experts") as report:
        return routing_statistics(hooked, texts, layers=None if layer is None else [layer], top=top, on_progress=report)


def _print(stats: RoutingStats, model: str, top: int, path: str | None) -> None:
    """One table per MoE layer, and where the report is."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from circuitscope.report.experts import ROUTING_COLUMNS, layer_rows

    console = Console()
    console.print(
        f"{escape(model)}: {stats.n_texts} texts, {stats.n_tokens} tokens, "
        f"{stats.n_experts} experts per layer, top-{stats.top_k}",
        highlight=False,
    )
    for routing in stats.layers:
        table = Table(title=f"Layer {routing.layer} (load balance {routing.balance:.3f})")
        for i, column in enumerate(ROUTING_COLUMNS):
            table.add_column(column, justify="left" if i == len(ROUTING_COLUMNS) - 1 else "right")
        for row in layer_rows(routing, top):
            table.add_row(*(escape(cell) for cell in row))
        console.print(table)
    if path is not None:
        console.print(f"report: {escape(path)}")


def register(app: typer.Typer) -> None:
    app.command("experts")(experts)
