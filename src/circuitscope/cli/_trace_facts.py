"""``circuitscope trace --facts FILE``: causal tracing of every fact of a fact file, split across ranks.

The fact file (the format :func:`circuitscope.tasks.facts.load_facts` reads) is read and checked before
the model loads; the traces come from :func:`circuitscope.analysis.tracing_facts.trace_facts`, which under
``torchrun`` deals the facts to the ranks; rank 0 writes the HTML page
(:func:`circuitscope.report.tracing.facts_report`) and prints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuitscope.cli._launch import is_main
from circuitscope.cli._output import reporting_errors
from circuitscope.cli._paths import Writes, check_output_file
from circuitscope.errors import OptionError

if TYPE_CHECKING:
    from circuitscope.analysis.tracing_facts import FactTraceResult

__all__ = ["FactsRun", "choice_kinds", "trace_fact_file"]


@dataclass(frozen=True)
class FactsRun:
    """The options of a fact-set trace, as the command line gave them."""

    facts: Path
    """The fact file."""
    kinds: tuple[str, ...]
    """The kinds traced (``resid``, ``mlp``, ``attn``)."""
    options: dict[str, Any]
    """``trace_facts``'s keyword options (corruption, noise, samples, window, seed, batch size)."""
    out: Path
    """Where the HTML page goes."""
    as_json: bool
    """Print JSON instead of a summary."""


def choice_kinds(kind: str) -> tuple[str, ...]:
    """The kinds ``--kind`` names (``all``: ``resid``, ``mlp`` and ``attn``)."""
    return ("resid", "mlp", "attn") if kind == "all" else (kind,)


def trace_fact_file(model: str, run: FactsRun, single: dict[str, bool]) -> None:
    """Read the facts (refusing a missing or malformed file, and ``single``'s options naming one prompt that
    are set, before the model loads), trace them, report."""
    from circuitscope.analysis.tracing_facts import trace_facts
    from circuitscope.core.loading import load_model
    from circuitscope.progress import stages
    from circuitscope.tasks.facts import load_facts

    started = time.perf_counter()
    with reporting_errors(run.as_json):
        clash = [name for name, given in single.items() if given]
        if clash:
            raise OptionError(f"--facts traces every fact of a file: drop {' and '.join(clash)}, or drop --facts")
        facts = load_facts(run.facts)
        if not facts:
            raise OptionError(f"--facts {run.facts}: the file has a header but no facts; add one fact a line")
        check_output_file(run.out, "--out")
        hooked = load_model(model)
        with stages("trace") as report:  # progress on stderr, also under --json
            results = [trace_facts(hooked, facts, kind=k, on_progress=report, **run.options) for k in run.kinds]  # type: ignore[arg-type]  # kinds checked by the command
    seconds = time.perf_counter() - started
    if is_main():
        _hand_over(model, run, results, seconds)


def _hand_over(model: str, run: FactsRun, results: list[FactTraceResult], seconds: float) -> None:
    from circuitscope.report.tracing import facts_report

    writes = Writes(run.as_json)
    path = writes.attempt("the HTML report", run.out, lambda: facts_report(model, results, seconds).write(run.out))
    if run.as_json:
        payload = {r.kind: r.to_json() for r in results}
        writes.emit_json({"model": model, "facts": str(run.facts), "kinds": payload, "report": path,
                          "seconds": round(seconds, 1)})  # fmt: skip
        return
    _print(results, path, seconds)
    writes.done()


def _print(results: list[FactTraceResult], path: str | None, seconds: float) -> None:
    from rich.console import Console

    console = Console()
    first = results[0].traces
    console.print(f"{len(first)} facts traced in {seconds:.0f} s", markup=False)
    for result in results:
        for where, effect in (("subject last", result.subject_last_effect), ("last", result.last_effect)):
            mean = effect.mean(0)
            best = int(mean.argmax())
            console.print(
                f"  {result.kind:5s} at the {where} token: strongest mean effect {float(mean[best]):+.3f} at layer "
                f"{best}",
                markup=False,
            )
    if path is not None:
        console.print(f"wrote {path}", markup=False)
