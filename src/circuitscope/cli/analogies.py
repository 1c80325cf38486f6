"""``circuitscope analogies`` (the Google analogy benchmark) and ``circuitscope analogy`` (one query)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from circuitscope.cli._paths import Writes, check_output_file
from circuitscope.cli.output import emit_json, fail
from circuitscope.errors import CircuitscopeError

if TYPE_CHECKING:
    from circuitscope.embeddings import Embeddings

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout.")]
EMBEDDINGS = ("glove-6b-50d",)


def _load(embeddings: str | None, model: str | None, matrix: str, space: str) -> list[Embeddings]:
    from circuitscope.embeddings import load_glove_6b_50d, model_embeddings

    if (embeddings is None) == (model is None):
        raise typer.BadParameter("give exactly one of --embeddings glove-6b-50d or --model MODEL")
    if embeddings is not None:
        if embeddings not in EMBEDDINGS:
            raise typer.BadParameter(f"--embeddings must be one of {', '.join(EMBEDDINGS)}, got {embeddings!r}")
        return [load_glove_6b_50d()]
    from circuitscope.core.loading import load_model

    if matrix not in ("W_E", "W_U") or space not in ("leading", "none", "both"):
        raise typer.BadParameter("--matrix is W_E or W_U; --space is leading, none or both")
    hooked = load_model(model)  # type: ignore[arg-type]
    spaces = ["leading", "none"] if space == "both" else [space]
    return [model_embeddings(hooked, matrix, s) for s in spaces]  # type: ignore[arg-type]


def analogies(
    embeddings: Annotated[str | None, typer.Option(help="Static vectors: glove-6b-50d.")] = None,
    model: Annotated[str | None, typer.Option(help="A language model whose token embeddings to test.")] = None,
    benchmark: Annotated[str, typer.Option(help="Benchmark: google (Mikolov et al. 2013, 19,544 questions).")] = (
        "google"
    ),
    matrix: Annotated[str, typer.Option(help="For --model: W_E (input embedding) or W_U (unembedding).")] = "W_E",
    space: Annotated[str, typer.Option(help="For --model: tokens with a leading space, none, or both.")] = "leading",
    method: Annotated[str, typer.Option(help="3cosadd (gensim's) or 3cosmul.")] = "3cosadd",
    restrict_vocab: Annotated[
        int, typer.Option(help="Only the first N words count (gensim: 300000).", min=1)
    ] = 300_000,
    out: Annotated[Path, typer.Option(help="Where to write the HTML report.")] = Path("analogies_report.html"),
    as_json: JsonFlag = False,
) -> None:
    """Evaluate word analogies with gensim's protocol: accuracy overall, semantic, syntactic and per section."""
    import time

    from circuitscope.embeddings import evaluate_analogies, load_google_analogies, plot_analogy_benchmark

    if benchmark != "google":
        raise fail(ValueError(f"unknown benchmark {benchmark!r}; available: google"), as_json)
    if method not in ("3cosadd", "3cosmul"):
        raise fail(ValueError(f"--method must be 3cosadd or 3cosmul, got {method!r}"), as_json)
    try:
        check_output_file(out, "--out")
        matrices = _load(embeddings, model, matrix, space)
        questions = load_google_analogies()
        results, seconds = [], []
        for emb in matrices:
            start = time.perf_counter()
            results.append(
                evaluate_analogies(emb, questions, restrict_vocab=restrict_vocab, method=method)  # type: ignore[arg-type]
            )
            seconds.append(time.perf_counter() - start)
    except (CircuitscopeError, typer.BadParameter) as err:
        raise fail(err, as_json) from err
    from circuitscope.report.html import Report

    report = Report("Word analogies: Google test set", f"{len(questions)} questions · {method} · gensim protocol")
    for r, s in zip(results, seconds, strict=True):
        report.add_kpis(
            r.embeddings,
            {
                "overall": f"{r.overall_accuracy:.3f}",
                "semantic": f"{r.semantic_accuracy:.3f}",
                "syntactic": f"{r.syntactic_accuracy:.3f}",
                "evaluated": str(r.n_questions - r.n_oov),
                "OOV skipped": str(r.n_oov),
                "seconds": f"{s:.1f}",
            },
        )
        report.add_figure(f"{r.embeddings}: per section", plot_analogy_benchmark(r))
        report.add_table(
            f"{r.embeddings}: sections",
            ["section", "accuracy", "correct", "incorrect", "OOV"],
            [[s.name, s.accuracy, s.correct, s.incorrect, s.oov] for s in r.sections],
        )
    writes = Writes(as_json)
    path = writes.attempt("the HTML report", out, lambda: report.write(out))
    payload = {"results": [r.to_dict() for r in results], "seconds": seconds, "report": path}
    if as_json:
        writes.emit_json(payload)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    for r in results:
        table = Table(title=f"{escape(r.embeddings)} ({method})")
        for col in ("section", "accuracy", "correct/evaluated", "OOV"):
            table.add_column(col)
        for s in r.sections:
            table.add_row(s.name, f"{s.accuracy:.3f}", f"{s.correct}/{s.correct + s.incorrect}", str(s.oov))
        table.add_row("semantic", f"{r.semantic_accuracy:.3f}", "", "")
        table.add_row("syntactic", f"{r.syntactic_accuracy:.3f}", "", "")
        table.add_row("overall", f"{r.overall_accuracy:.3f}", f"{r.n_questions - r.n_oov}", str(r.n_oov))
        console.print(table)
    if path is not None:
        console.print(f"report: {path}", markup=False)
    writes.done()


def analogy(
    expression: Annotated[str, typer.Argument(help="Word arithmetic, e.g. 'king - man + woman'.")],
    embeddings: Annotated[str | None, typer.Option(help="Static vectors: glove-6b-50d.")] = None,
    model: Annotated[str | None, typer.Option(help="A language model whose token embeddings to use.")] = None,
    matrix: Annotated[str, typer.Option(help="For --model: W_E or W_U.")] = "W_E",
    space: Annotated[str, typer.Option(help="For --model: leading, none or both.")] = "leading",
    top: Annotated[int, typer.Option(help="How many answers.", min=1)] = 10,
    method: Annotated[str, typer.Option(help="3cosadd or 3cosmul.")] = "3cosadd",
    target: Annotated[
        str | None, typer.Option(help="Also report this word's rank and its projection onto the inputs.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Solve one analogy, with and without excluding the input words (and project a target onto their span)."""
    from circuitscope.embeddings import parse_expression, project_onto_span, solve_analogy

    if method not in ("3cosadd", "3cosmul"):
        raise fail(ValueError(f"--method must be 3cosadd or 3cosmul, got {method!r}"), as_json)
    try:
        terms = parse_expression(expression)
        matrices = _load(embeddings, model, matrix, space)
        results = []
        for emb in matrices:
            entry: dict[str, object] = {"embeddings": emb.name}
            for exclude in (True, False):
                r = solve_analogy(emb, terms, method=method, top=top, exclude_inputs=exclude)  # type: ignore[arg-type]
                key = "excluding_inputs" if exclude else "including_inputs"
                entry[key] = [{"word": w, "score": float(s)} for w, s in zip(r.words, r.scores, strict=True)]
                if target is not None:
                    entry[f"rank_of_{target}_{key}"] = r.rank(target) if target in emb else None
            if target is not None and target in emb:
                p = project_onto_span(emb, target, [t.word for t in terms])
                entry["projection"] = {
                    "basis": p.basis,
                    "coefficients": p.coefficients.tolist(),
                    "cosine": p.cosine,
                    "residual_fraction": p.residual_fraction,
                }
            results.append(entry)
    except (CircuitscopeError, typer.BadParameter) as err:
        raise fail(err, as_json) from err
    payload = {"expression": expression, "method": method, "results": results}
    if as_json:
        emit_json(payload)
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    for entry in results:
        console.print(f"[bold]{escape(str(entry['embeddings']))}[/]: {escape(expression)}")
        for key in ("excluding_inputs", "including_inputs"):
            answers = entry[key]
            assert isinstance(answers, list)
            words = ", ".join(f"{a['word']} ({a['score']:.3f})" for a in answers)
            console.print(f"  {key.replace('_', ' ')}: {words}", highlight=False, markup=False)
        if "projection" in entry:
            console.print(f"  projection of {target!r}: {entry['projection']}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.command("analogies")(analogies)
    app.command("analogy")(analogy)
