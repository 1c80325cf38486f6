"""``circuitscope analogies`` (the Google analogy benchmark) and ``circuitscope analogy`` (one query)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from circuitscope.cli._options import JsonFlag, OutOpt, check_choice, choice_names
from circuitscope.cli._output import emit_json, fail, reporting_errors
from circuitscope.cli._paths import Writes, check_output_file

if TYPE_CHECKING:
    from circuitscope.embeddings import AnalogyBenchmarkResult, Embeddings, Term

StaticEmbeddings = Literal["glove-6b-50d"]
"""The static word vectors ``--embeddings`` names."""

EmbeddingsOpt = Annotated[str | None, typer.Option(help="Static vectors: glove-6b-50d.")]
TokenModelOpt = Annotated[str | None, typer.Option(help="A language model whose token embeddings to use.")]
MatrixOpt = Annotated[str, typer.Option(help="For --model: W_E (input embedding) or W_U (unembedding).")]
SpaceOpt = Annotated[str, typer.Option(help="For --model: tokens with a leading space, none, or both.")]
MethodOpt = Annotated[str, typer.Option(help="3cosadd (gensim's) or 3cosmul.")]


def _load(embeddings: str | None, model: str | None, matrix: str, space: str) -> list[Embeddings]:
    from circuitscope.embeddings import load_glove_6b_50d, model_embeddings
    from circuitscope.embeddings.matrix import Matrix, Space

    if (embeddings is None) == (model is None):
        raise typer.BadParameter("give exactly one of --embeddings glove-6b-50d or --model MODEL")
    if embeddings is not None:
        check_choice(embeddings, StaticEmbeddings, "--embeddings", quote=False)
        return [load_glove_6b_50d()]
    from circuitscope.core.loading import load_model

    if matrix not in choice_names(Matrix) or space not in (*choice_names(Space), "both"):
        raise typer.BadParameter("--matrix is W_E or W_U; --space is leading, none or both")
    hooked = load_model(model)  # type: ignore[arg-type]
    spaces = ["leading", "none"] if space == "both" else [space]
    return [model_embeddings(hooked, matrix, s) for s in spaces]  # type: ignore[arg-type]


def _check_method(method: str, as_json: bool) -> None:
    from circuitscope.embeddings.analogy import Method

    with reporting_errors(as_json, ValueError):
        check_choice(method, Method, "--method", error=ValueError, quote=False)


def analogies(
    embeddings: EmbeddingsOpt = None,
    model: TokenModelOpt = None,
    benchmark: Annotated[str, typer.Option(help="Benchmark: google (Mikolov et al. 2013, 19,544 questions).")] = (
        "google"
    ),
    matrix: MatrixOpt = "W_E",
    space: SpaceOpt = "leading",
    method: MethodOpt = "3cosadd",
    restrict_vocab: Annotated[
        int, typer.Option(help="Only the first N words count (gensim: 300000).", min=1)
    ] = 300_000,
    out: OutOpt = Path("analogies_report.html"),
    as_json: JsonFlag = False,
) -> None:
    """Evaluate word analogies with gensim's protocol: accuracy overall, semantic, syntactic and per section."""
    import time

    from circuitscope.embeddings import evaluate_analogies, load_google_analogies
    from circuitscope.report.embeddings import analogy_report

    if benchmark != "google":
        raise fail(ValueError(f"unknown benchmark {benchmark!r}; available: google"), as_json)
    _check_method(method, as_json)
    with reporting_errors(as_json, typer.BadParameter):
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
    report = analogy_report(results, seconds, n_questions=len(questions), method=method)
    writes = Writes(as_json)
    path = writes.attempt("the HTML report", out, lambda: report.write(out))
    if as_json:
        writes.emit_json({"results": [r.to_dict() for r in results], "seconds": seconds, "report": path})
        return
    _print_benchmark(results, method, path)
    writes.done()


def _print_benchmark(results: list[AnalogyBenchmarkResult], method: str, path: str | None) -> None:
    """One table per embedding matrix: accuracy per section, semantic, syntactic and overall."""
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


def analogy(
    expression: Annotated[str, typer.Argument(help="Word arithmetic, e.g. 'king - man + woman'.")],
    embeddings: EmbeddingsOpt = None,
    model: TokenModelOpt = None,
    matrix: MatrixOpt = "W_E",
    space: SpaceOpt = "leading",
    top: Annotated[int, typer.Option(help="How many answers.", min=1)] = 10,
    method: MethodOpt = "3cosadd",
    target: Annotated[
        str | None, typer.Option(help="Also report this word's rank and its projection onto the inputs.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Solve one analogy, with and without excluding the input words (and project a target onto their span)."""
    from circuitscope.embeddings import parse_expression

    _check_method(method, as_json)
    with reporting_errors(as_json, typer.BadParameter):
        terms = parse_expression(expression)
        matrices = _load(embeddings, model, matrix, space)
        results = [_solve(emb, terms, method, top, target) for emb in matrices]
    if as_json:
        emit_json({"expression": expression, "method": method, "results": results})
        return
    _print_answers(results, expression, target)


def _solve(emb: Embeddings, terms: list[Term], method: str, top: int, target: str | None) -> dict[str, object]:
    """The top answers with and without the input words, the target's rank and its projection onto their span."""
    from circuitscope.embeddings import project_onto_span, solve_analogy

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
    return entry


def _print_answers(results: list[dict[str, object]], expression: str, target: str | None) -> None:
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
