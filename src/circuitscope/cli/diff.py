"""``circuitscope diff``: two models (or checkpoints) with one tokenizer, compared on the same text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import torch
import typer

from circuitscope.cli._options import JsonFlag, OutOpt
from circuitscope.cli._output import fail, reporting_errors
from circuitscope.cli._paths import Writes, check_output_file
from circuitscope.cli._ranges import parse_floats
from circuitscope.errors import CircuitscopeError

if TYPE_CHECKING:
    from circuitscope.diffing import AttentionDiff, Interpolation, LayerCKA, LossDiff, WeightDiff


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


@dataclass(frozen=True)
class _Diff:
    """Every comparison of two models on the text; the per-layer ones are None when the shapes differ."""

    loss: LossDiff
    cka: LayerCKA | None
    attention: AttentionDiff | None
    weights: WeightDiff | None
    interpolation: Interpolation | None


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
    out: OutOpt = Path("diff_report.html"),
    as_json: JsonFlag = False,
) -> None:
    """Compare two models on a text: per-token loss, top contexts, CKA, attention, weights, interpolation."""
    from circuitscope.report.diffing import diff_report

    if not text.is_file():
        raise fail(FileNotFoundError(f"--text {text} is not a file"), as_json)
    texts = _chunks(text.read_text(encoding="utf-8", errors="replace"), chunk_chars, max_chunks)
    if not texts:
        raise fail(ValueError(f"{text} has no text"), as_json)
    with reporting_errors(as_json, typer.BadParameter):
        path_alphas = parse_floats(alphas) if alphas.strip() else []
        check_output_file(out, "--out")
        found = _compare(a, b, texts, path_alphas)
    report = diff_report(
        a, b, text.name, len(texts), found.loss, top, found.cka, found.attention, found.weights, found.interpolation
    )
    writes = Writes(as_json)
    path = writes.attempt("the HTML report", out, lambda: report.write(out))
    if as_json:
        writes.emit_json(_payload(found, a, b, len(texts), top, path))
        return
    _print(found, top, path)
    writes.done()


def _compare(a: str, b: str, texts: list[str], alphas: list[float]) -> _Diff:
    """Load both models and compare them; the per-layer comparisons only for models of one shape."""
    from circuitscope.core.loading import load_model
    from circuitscope.diffing import (
        attention_diff,
        check_same_architecture,
        check_same_tokenizer,
        interpolate,
        layer_cka,
        loss_diff,
        weight_diff,
    )
    from circuitscope.progress import stages

    model_a = load_model(a)
    model_b = load_model(b)
    check_same_tokenizer(model_a, model_b)
    ld = loss_diff(model_a, model_b, texts)
    try:
        check_same_architecture(model_a, model_b)
    except CircuitscopeError:
        return _Diff(ld, None, None, None, None)
    cka = layer_cka(model_a, model_b, texts)
    att = attention_diff(model_a, model_b, texts)
    wd = weight_diff(model_a, model_b)
    interp = None
    if alphas:
        with stages("diff") as on_progress:  # progress on stderr, also under --json
            interp = interpolate(model_a, model_b, texts[:2], alphas, on_progress=on_progress)
    return _Diff(ld, cka, att, wd, interp)


def _payload(found: _Diff, a: str, b: str, chunks: int, top: int, path: str | None) -> dict[str, Any]:
    return {
        "a": a,
        "b": b,
        "chunks": chunks,
        "loss": found.loss.to_dict(top),
        "cka": found.cka.to_dict() if found.cka else None,
        "attention": found.attention.to_dict() if found.attention else None,
        "weights": found.weights.to_dict() if found.weights else None,
        "interpolation": found.interpolation.to_dict() if found.interpolation else None,
        "report": path,
    }


def _print(found: _Diff, top: int, path: str | None) -> None:
    """The mean losses, the contexts that differ most, and one line per per-layer comparison."""
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    ld = found.loss
    console.print(f"loss A {ld.mean_a:.4f}, B {ld.mean_b:.4f} (B - A {ld.mean_b - ld.mean_a:+.4f}) nats/token")
    for c in ld.top_contexts(min(top, 5)):
        console.print(
            f"  {c.diff:+.3f}: ...{escape(''.join(c.tokens[: c.focus]))}[bold]{escape(c.tokens[c.focus])}[/]",
            highlight=False,
        )
    if found.cka is not None:
        console.print("CKA per layer: " + ", ".join(f"{x:.3f}" for x in found.cka.cka.tolist()))
    if found.weights is not None:
        console.print(f"relative weight difference: {found.weights.total_relative:.4g}")
    if found.interpolation is not None:
        interp = found.interpolation
        console.print(
            f"interpolation loss: {[round(x, 4) for x in interp.loss.tolist()]}, barrier {interp.barrier:+.4f}"
        )
    if path is not None:
        console.print(f"report: {path}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("diff")(diff)
