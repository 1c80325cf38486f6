"""``circuitscope diff``: two models (or checkpoints) with one tokenizer, compared on the same text."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Annotated

import torch
import typer

from circuitscope.cli._paths import Writes, check_output_file
from circuitscope.cli.output import fail
from circuitscope.errors import CircuitscopeError

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout.")]


def _chunks(text: str, max_chars: int, n: int) -> list[str]:
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    out: list[str] = []
    for p in paragraphs:
        while p and len(out) < n:
            out.append(p[:max_chars])
            p = p[max_chars:]
        if len(out) >= n:
            break
    return out


@torch.no_grad()  # scoped to the command: no process-wide autograd switch
def diff(
    a: Annotated[str, typer.Option("--a", help="Model A: hub id, folder, .gguf or the embedded default.")],
    b: Annotated[str, typer.Option("--b", help="Model B (same tokenizer).")],
    text: Annotated[Path, typer.Option("--text", help="A UTF-8 text file to compare the models on.")],
    max_chunks: Annotated[int, typer.Option(help="At most this many chunks of the text.", min=1)] = 8,
    chunk_chars: Annotated[int, typer.Option(help="Characters per chunk.", min=20)] = 800,
    top: Annotated[int, typer.Option(help="How many differing contexts to show.", min=1)] = 12,
    alphas: Annotated[
        str, typer.Option(help="Interpolation points, comma-separated ('' to skip).")
    ] = "0,0.25,0.5,0.75,1",
    out: Annotated[Path, typer.Option(help="Where to write the HTML report.")] = Path("diff_report.html"),
    as_json: JsonFlag = False,
) -> None:
    """Compare two models on a text: per-token loss, top contexts, CKA, attention, weights, interpolation."""

    from circuitscope.cli._ranges import parse_floats
    from circuitscope.core.loading import load_model
    from circuitscope.diffing import (
        attention_diff,
        check_same_architecture,
        check_same_tokenizer,
        interpolate,
        layer_cka,
        loss_diff,
        plot_attention_diff,
        plot_cka,
        plot_interpolation,
        plot_loss_diff,
        plot_weight_diff,
        weight_diff,
    )
    from circuitscope.report.html import Report, token_html

    if not text.is_file():
        raise fail(FileNotFoundError(f"--text {text} is not a file"), as_json)
    texts = _chunks(text.read_text(encoding="utf-8", errors="replace"), chunk_chars, max_chunks)
    if not texts:
        raise fail(ValueError(f"{text} has no text"), as_json)
    try:
        path_alphas = parse_floats(alphas) if alphas.strip() else []
        check_output_file(out, "--out")
        model_a = load_model(a)
        model_b = load_model(b)
        check_same_tokenizer(model_a, model_b)
        ld = loss_diff(model_a, model_b, texts)
        same_shape = True
        try:
            check_same_architecture(model_a, model_b)
        except CircuitscopeError:
            same_shape = False
        cka = layer_cka(model_a, model_b, texts) if same_shape else None
        att = attention_diff(model_a, model_b, texts) if same_shape else None
        wd = weight_diff(model_a, model_b) if same_shape else None
        interp = interpolate(model_a, model_b, texts[:2], path_alphas) if same_shape and path_alphas else None
    except (CircuitscopeError, typer.BadParameter) as err:
        raise fail(err, as_json) from err

    report = Report("Model diff", f"A = {a} · B = {b} · {len(texts)} chunks of {text.name}")
    report.add_kpis(
        "Loss",
        {
            "A (nats/token)": f"{ld.mean_a:.4f}",
            "B (nats/token)": f"{ld.mean_b:.4f}",
            "B - A": f"{ld.mean_b - ld.mean_a:+.4f}",
            "tokens": str(sum(d.numel() for d in ld.diff)),
        },
    )
    report.add_figure("Per-token loss (first chunk)", plot_loss_diff(ld))
    rows = []
    for c in ld.top_contexts(top):
        values = [0.0] * len(c.tokens)
        values[c.focus] = c.diff
        rows.append(
            f"<tr><td class='num'>{c.diff:+.3f}</td><td class='num'>{c.loss_a:.3f}</td>"
            f"<td class='num'>{c.loss_b:.3f}</td><td>{token_html(c.tokens, values)}</td></tr>"
        )
    report.add_html(
        "Contexts where the models differ most",
        "<table><thead><tr><th>B - A</th><th>loss A</th><th>loss B</th><th>context</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table><p class='caption'>"
        + html.escape("Shaded token: the one predicted; blue means B has the higher loss, red that A has.")
        + "</p>",
    )
    if cka is not None and att is not None and wd is not None:
        report.add_figure("Residual-stream similarity per layer (linear CKA)", plot_cka(cka))
        report.add_figure("Attention-pattern difference per head", plot_attention_diff(att))
        report.add_figure("Weight difference by component", plot_weight_diff(wd))
    else:
        report.add_text("Per-layer comparisons", "Skipped: the models differ in shape (layers, heads or widths).")
    if interp is not None:
        report.add_figure("Weight interpolation", plot_interpolation(interp))
    writes = Writes(as_json)
    path = writes.attempt("the HTML report", out, lambda: report.write(out))
    payload = {
        "a": a,
        "b": b,
        "chunks": len(texts),
        "loss": ld.to_dict(top),
        "cka": cka.to_dict() if cka else None,
        "attention": att.to_dict() if att else None,
        "weights": wd.to_dict() if wd else None,
        "interpolation": interp.to_dict() if interp else None,
        "report": path,
    }
    if as_json:
        writes.emit_json(payload)
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    console.print(f"loss A {ld.mean_a:.4f}, B {ld.mean_b:.4f} (B - A {ld.mean_b - ld.mean_a:+.4f}) nats/token")
    for c in ld.top_contexts(min(top, 5)):
        console.print(
            f"  {c.diff:+.3f}: ...{escape(''.join(c.tokens[: c.focus]))}[bold]{escape(c.tokens[c.focus])}[/]",
            highlight=False,
        )
    if cka is not None:
        console.print("CKA per layer: " + ", ".join(f"{x:.3f}" for x in cka.cka.tolist()))
    if wd is not None:
        console.print(f"relative weight difference: {wd.total_relative:.4g}")
    if interp is not None:
        console.print(
            f"interpolation loss: {[round(x, 4) for x in interp.loss.tolist()]}, barrier {interp.barrier:+.4f}"
        )
    if path is not None:
        console.print(f"report: {path}", markup=False)
    writes.done()


def register(app: typer.Typer) -> None:
    app.command("diff")(diff)
