"""``circuitscope trace``: causal tracing (ROME) of a factual prompt, or of a fact file, as HTML and --json.

Under ``torchrun`` every rank runs the command (the ranks are checked to have the same options before the
model loads): ``--facts FILE`` deals the facts to the ranks (:mod:`circuitscope.cli._trace_facts`); one
prompt is traced whole on every rank. Rank 0 prints and writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from circuitscope.cli._launch import across_ranks, is_main
from circuitscope.cli._options import BatchRowsOpt, JsonFlag, ModelOpt, OutOpt, SeedOpt, check_choice, choice_names
from circuitscope.cli._output import emit_json, reporting_errors
from circuitscope.cli._paths import Writes, check_output_file
from circuitscope.cli._trace_facts import FactsRun, choice_kinds, trace_fact_file
from circuitscope.core.loading import DEFAULT_MODEL
from circuitscope.errors import OptionError
from circuitscope.tasks.library import TASK_NAMES

if TYPE_CHECKING:
    from circuitscope.analysis.tracing import HeadTraceResult, NeuronTraceResult, TraceResult

PromptOpt = Annotated[str, typer.Option(help="A factual prompt: 'The Eiffel Tower is located in the city of'.")]
SubjectOpt = Annotated[str, typer.Option(help="The subject as written in the prompt, e.g. 'The Eiffel Tower'.")]
FactOpt = Annotated[
    int | None, typer.Option("--fact", help="Trace fact N of the shipped set instead of --prompt/--subject.")
]
FactsFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--facts",
        help="Trace every fact of this fact file (JSONL, the shipped set's format) instead of one prompt; "
        "under torchrun the facts are split across the ranks.",
        show_default=False,
    ),
]
ListFactsOpt = Annotated[bool, typer.Option("--list-facts", help="List the shipped facts and exit.")]
CorruptionOpt = Annotated[
    str | None,
    typer.Option(
        help="noise (Gaussian, on the subject's embeddings) or resample (default: noise; with --task, resample "
        "from the pair's corrupted prompt).",
        show_default=False,
    ),
]
TaskOpt = Annotated[
    str | None,
    typer.Option(
        "--task",
        help=f"Trace a task's pair instead of --prompt/--subject: a built-in task ({', '.join(TASK_NAMES)}) or a "
        "JSONL file; the span its corruption changes is corrupted, the target is its correct answer.",
        show_default=False,
    ),
]
PairOpt = Annotated[int, typer.Option("--pair", min=0, help="With --task: the pair to trace (0 is the first).")]
SamplesOpt = Annotated[int, typer.Option("--samples", min=1, help="Noise samples / replacement subjects.")]
TargetOpt = Annotated[str, typer.Option(help="Target token (one token); default: the clean top-1 token.")]
HeadsFlag = Annotated[bool, typer.Option("--heads", help="Also restore single heads at the subject's last token.")]
HeadsAtOpt = Annotated[
    str, typer.Option("--heads-at", help="Where heads are restored: subject_last, last, all, or a position.")
]
NeuronsOpt = Annotated[
    int | None,
    typer.Option("--neurons", help="Also restore single MLP neurons of this layer (at the subject's last token)."),
]
CandidatesOpt = Annotated[int, typer.Option(min=1, help="Neurons restored with --neurons (the largest writes).")]


@dataclass(frozen=True)
class _Input:
    """What is traced: the prompt, its subject, the corruption's replacement subjects, the target, the task pair."""

    prompt: str
    subject: str
    subjects: tuple[str, ...] | None = None
    target: str | None = None
    task: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Traces:
    """The traces of one run: one per kind, and the single heads and neurons if asked for."""

    traces: list[TraceResult]
    heads: HeadTraceResult | None
    neurons: NeuronTraceResult | None


def _list_facts(as_json: bool) -> None:
    from circuitscope.tasks.facts import load_facts

    facts = load_facts()
    if as_json:
        emit_json({"facts": [{"index": i, **f.to_dict(), "prompt": f.prompt} for i, f in enumerate(facts)]})
        return
    from rich.console import Console

    console = Console()
    for i, f in enumerate(facts):
        console.print(f"{i:3d}  {f.prompt!r} -> {f.object!r}   (subject {f.subject!r})", highlight=False, markup=False)


@across_ranks  # under torchrun: --facts splits the facts across the ranks; rank 0 prints and writes
def trace(
    model: ModelOpt = DEFAULT_MODEL,
    facts: FactsFileOpt = None,
    prompt: PromptOpt = "",
    subject: SubjectOpt = "",
    fact: FactOpt = None,
    task: TaskOpt = None,
    pair: PairOpt = 0,
    list_facts: ListFactsOpt = False,
    corruption: CorruptionOpt = None,
    kind: Annotated[str, typer.Option(help="resid, mlp, attn or all.")] = "all",
    samples: SamplesOpt = 10,
    window: Annotated[int, typer.Option(min=1, help="Layers restored together for mlp and attn.")] = 10,
    noise_scale: Annotated[float, typer.Option(min=0.0, help="Noise std in embedding stds.")] = 3.0,
    target: TargetOpt = "",
    seed: SeedOpt = 0,
    heads: HeadsFlag = False,
    heads_at: HeadsAtOpt = "subject_last",
    neurons: NeuronsOpt = None,
    candidates: CandidatesOpt = 256,
    batch_size: BatchRowsOpt = 256,
    out: OutOpt = Path("trace.html"),
    as_json: JsonFlag = False,
) -> None:
    """Where is a fact recalled? Corrupt the subject, restore clean states one at a time (Meng et al. 2022)."""
    if list_facts:
        _list_facts(as_json)
        return
    corruption = corruption or ("resample" if task is not None else "noise")
    at = _check_choices(kind, corruption, heads_at, as_json)
    if facts is not None:  # every fact of a file: the options naming one prompt are refused
        single = {"--prompt": bool(prompt), "--subject": bool(subject), "--fact": fact is not None, "--heads": heads,
                  "--task": task is not None, "--target": bool(target), "--neurons": neurons is not None}  # fmt: skip
        options = {"corruption": corruption, "noise_scale": noise_scale, "n_samples": samples, "window": window,
                   "seed": seed, "batch_size": batch_size}  # fmt: skip
        trace_fact_file(model, FactsRun(facts, choice_kinds(kind), options, out, as_json), single)
        return
    from circuitscope.core.loading import load_model

    started = time.perf_counter()
    with reporting_errors(as_json, typer.BadParameter):
        given = _given_input(task, prompt, subject, fact)
        check_output_file(out, "--out")
        hooked = load_model(model)
        traced = given if given is not None else _task_input(hooked, str(task), pair, seed)
        prompt = traced.prompt
        _check_after_load(hooked, prompt, at if heads else None, neurons)
        common: dict[str, Any] = {
            "corruption": corruption,
            "noise_scale": noise_scale,
            "n_samples": samples,
            "subjects": traced.subjects if corruption == "resample" else None,
            "target": target or traced.target,
            "seed": seed,
            "batch_size": batch_size,
        }
        found = _trace(hooked, prompt, traced.subject, kind, window, at if heads else None, neurons, candidates, common)
    _hand_over(found, traced, model, corruption, window, out, time.perf_counter() - started, as_json)


def _hand_over(
    found: _Traces, traced: _Input, model: str, corruption: str, window: int, out: Path, seconds: float, as_json: bool
) -> None:
    """The traces to the HTML report, then to stdout (--json, or the summary in words); on rank 0 only."""
    from circuitscope.report.tracing import trace_report

    if not is_main():
        return
    writes = Writes(as_json)
    path = writes.attempt(
        "the HTML report",
        out,
        lambda: trace_report(model, found.traces, found.heads, found.neurons, seconds).write(out),
    )
    if as_json:
        writes.emit_json({**_payload(found, model, traced.prompt, window, path, seconds), "task": traced.task})
        return
    _print(found, traced.prompt, corruption, path, seconds)
    writes.done()


def _check_choices(kind: str, corruption: str, heads_at: str, as_json: bool) -> Any:
    """``--kind``, ``--corruption`` and ``--heads-at`` checked; the heads' place (a name or a token position)."""
    from circuitscope.analysis.tracing import At, Corruption, TraceKind

    kinds = (*choice_names(TraceKind), "all")
    at: Any = int(heads_at) if heads_at.lstrip("-").isdigit() else heads_at
    with reporting_errors(as_json, typer.BadParameter):
        check_choice(kind, kinds, "--kind", expected=f"one of {kinds}")
        check_choice(corruption, Corruption, "--corruption")
        if isinstance(at, str):
            check_choice(
                at, At, "--heads-at", error=OptionError, expected="subject_last, last, all or a token position"
            )
    return at


def _prompt_and_subject(prompt: str, subject: str, fact: int | None) -> tuple[str, str]:
    """``--prompt`` and ``--subject``, or those of ``--fact N``."""
    from circuitscope.tasks.facts import load_facts

    if fact is not None:
        facts = load_facts()
        if not 0 <= fact < len(facts):
            raise typer.BadParameter(f"--fact must be in 0..{len(facts) - 1} (see --list-facts), got {fact}")
        prompt, subject = facts[fact].prompt, facts[fact].subject
    if not prompt or not subject:
        raise typer.BadParameter("give --prompt and --subject (or --fact N; --list-facts shows the shipped set)")
    return prompt, subject


def _given_input(task: str | None, prompt: str, subject: str, fact: int | None) -> _Input | None:
    """``--prompt``/``--subject`` or ``--fact`` (None with ``--task``, checked here, read once the model loads)."""
    from circuitscope.tasks.library import check_task_spec

    if task is None:
        return _Input(*_prompt_and_subject(prompt, subject, fact))
    check_task_spec(task)
    given = [name for name, value in (("--prompt", prompt), ("--subject", subject)) if value]
    given += ["--fact"] if fact is not None else []
    if given:
        raise OptionError(f"--task traces a task's pair: drop {' and '.join(given)}, or drop --task")
    return None


def _task_input(hooked: Any, spec: str, pair: int, seed: int) -> _Input:
    """Pair ``pair`` of task ``spec``: its clean prompt, the span its corruption changes, its correct answer."""
    from circuitscope.tasks.library import resolve_task
    from circuitscope.tasks.spans import corruption_span

    # a built-in task's pairs are drawn in order, so pair N is the same whatever the number of pairs
    loaded = resolve_task(hooked, spec, n_prompts=pair + 1, seed=seed)
    if spec not in TASK_NAMES and pair >= len(loaded):
        raise OptionError(
            f"--pair {pair}: the task file {spec} has {len(loaded)} pairs; give one in 0..{len(loaded) - 1}"
        )
    span = corruption_span(loaded, pair)
    correct = str(hooked.to_string(int(loaded.correct[pair])))
    incorrect = str(hooked.to_string(int(loaded.incorrect[pair])))
    info = {"name": loaded.name, "pair": pair, "corrupted": span.corrupted, "correct": correct, "incorrect": incorrect}
    return _Input(span.prompt, span.subject, (span.replacement,), correct, info)


def _trace(
    hooked: Any,
    prompt: str,
    subject: str,
    kind: str,
    window: int,
    at: Any,
    neurons: int | None,
    candidates: int,
    common: dict[str, Any],
) -> _Traces:
    """Trace each kind (all three for ``all``), then single heads at ``at`` (unless None) and ``neurons``' layer."""
    from circuitscope.analysis.tracing import causal_trace, trace_heads, trace_neurons
    from circuitscope.progress import stages

    kinds = choice_kinds(kind)
    with stages("trace") as report:  # bars on a terminal, periodic lines otherwise (stderr, also under --json)
        common = {**common, "on_progress": report}
        traces = [causal_trace(hooked, prompt, subject, kind=k, window=window, **common) for k in kinds]  # type: ignore[arg-type]
        head_trace = trace_heads(hooked, prompt, subject, at=at, **common) if at is not None else None
        neuron_trace = (
            trace_neurons(hooked, prompt, subject, layer=neurons, candidates=candidates, **common)
            if neurons is not None
            else None
        )
    return _Traces(traces, head_trace, neuron_trace)


def _payload(found: _Traces, model: str, prompt: str, window: int, path: str | None, seconds: float) -> dict[str, Any]:
    head_trace, neuron_trace = found.heads, found.neurons
    return {
        "model": model,
        "prompt": prompt,
        **found.traces[0].baseline.to_dict(),
        "window": window,
        "traces": {
            t.kind: {"window": t.window, "restored": t.restored.tolist(), "indirect_effect": t.indirect_effect.tolist()}
            for t in found.traces
        },
        "heads": head_trace.to_dict() if head_trace is not None else None,
        "neurons": neuron_trace.to_dict() if neuron_trace is not None else None,
        "report": path,
        "seconds": round(seconds, 1),
    }


def _print(found: _Traces, prompt: str, corruption: str, path: str | None, seconds: float) -> None:
    """The clean and corrupted probabilities, the strongest cells of each trace, the top heads and neurons."""
    from rich.console import Console
    from rich.markup import escape

    from circuitscope.analysis.tracing_results import strongest_cells

    console = Console()
    base = found.traces[0].baseline
    console.print(
        f"[bold]{escape(repr(prompt))}[/] -> {escape(repr(base.target))}: "
        f"p clean {base.clean_prob:.4f}, corrupted {base.corrupted_prob:.4f} "
        f"({corruption}, {base.n_samples} samples)",
        highlight=False,
    )
    for t in found.traces:
        cells = ", ".join(f"L{la} {base.tokens[p]!r} {e:+.3f}" for la, p, e in strongest_cells(t, 3))
        console.print(f"  {t.kind:5s} strongest: {cells}", highlight=False, markup=False)
    if found.heads is not None:
        console.print("  heads: " + ", ".join(f"L{la}H{h} {e:+.3f}" for la, h, e in found.heads.top(5)))
    if found.neurons is not None:
        console.print(
            f"  layer {found.neurons.layer} neurons: " + ", ".join(f"N{n} {e:+.3f}" for n, e in found.neurons.top)
        )
    if path is not None:
        console.print(f"wrote {path} in {seconds:.0f} s", markup=False)


def _check_after_load(hooked: Any, prompt: str, at: Any, neurons: int | None) -> None:
    """The options that need the model (a layer, a token position), checked before any tracing."""
    if neurons is not None:
        n = hooked.cfg.n_layers
        if not 0 <= neurons < n:
            raise OptionError(f"--neurons {neurons} is not a layer of this model: give a layer in 0..{n - 1}")
    if isinstance(at, int):
        seq = int(hooked.to_tokens(prompt).shape[1])
        if not -seq <= at < seq:
            raise OptionError(
                f"--heads-at {at} is not a token position of the prompt ({seq} tokens): give one in 0..{seq - 1}, "
                "or subject_last, last or all"
            )


def register(app: typer.Typer) -> None:
    app.command("trace")(trace)
