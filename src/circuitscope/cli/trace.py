"""``circuitscope trace``: causal tracing (ROME) of a factual prompt, as HTML and --json."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from circuitscope.cli._paths import Writes, check_output_file
from circuitscope.cli.output import emit_json, fail
from circuitscope.core.loading import DEFAULT_MODEL
from circuitscope.errors import CircuitscopeError, OptionError

JsonFlag = Annotated[bool, typer.Option("--json", help="Print every number as JSON to stdout.")]
KINDS = ("resid", "mlp", "attn", "all")


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


def trace(
    model: Annotated[str, typer.Option("--model", help=f"Hub id, model folder, .gguf, or {DEFAULT_MODEL!r}.")] = (
        DEFAULT_MODEL
    ),
    prompt: Annotated[str, typer.Option(help="A factual prompt: 'The Eiffel Tower is located in the city of'.")] = "",
    subject: Annotated[str, typer.Option(help="The subject as written in the prompt, e.g. 'The Eiffel Tower'.")] = "",
    fact: Annotated[
        int | None, typer.Option("--fact", help="Trace fact N of the shipped set instead of --prompt/--subject.")
    ] = None,
    list_facts: Annotated[bool, typer.Option("--list-facts", help="List the shipped facts and exit.")] = False,
    corruption: Annotated[str, typer.Option(help="noise (Gaussian, on the subject's embeddings) or resample.")] = (
        "noise"
    ),
    kind: Annotated[str, typer.Option(help="resid, mlp, attn or all.")] = "all",
    samples: Annotated[int, typer.Option("--samples", min=1, help="Noise samples / replacement subjects.")] = 10,
    window: Annotated[int, typer.Option(min=1, help="Layers restored together for mlp and attn.")] = 10,
    noise_scale: Annotated[float, typer.Option(min=0.0, help="Noise std in embedding stds.")] = 3.0,
    target: Annotated[str, typer.Option(help="Target token (one token); default: the clean top-1 token.")] = "",
    seed: Annotated[int, typer.Option(help="Seed of the noise and of the choice of subjects.")] = 0,
    heads: Annotated[bool, typer.Option("--heads", help="Also restore single heads at the subject's last token.")] = (
        False
    ),
    heads_at: Annotated[
        str, typer.Option("--heads-at", help="Where heads are restored: subject_last, last, all, or a position.")
    ] = "subject_last",
    neurons: Annotated[
        int | None,
        typer.Option("--neurons", help="Also restore single MLP neurons of this layer (at the subject's last token)."),
    ] = None,
    candidates: Annotated[int, typer.Option(min=1, help="Neurons restored with --neurons (the largest writes).")] = 256,
    batch_rows: Annotated[int, typer.Option("--batch-rows", min=1, help="Rows per forward pass.")] = 256,
    out: Annotated[Path, typer.Option(help="Where to write the HTML report.")] = Path("trace.html"),
    as_json: JsonFlag = False,
) -> None:
    """Where is a fact recalled? Corrupt the subject, restore clean states one at a time (Meng et al. 2022)."""
    if list_facts:
        _list_facts(as_json)
        return
    if kind not in KINDS:
        raise fail(typer.BadParameter(f"--kind must be one of {KINDS}, got {kind!r}"), as_json)
    if corruption not in ("noise", "resample"):
        raise fail(typer.BadParameter(f"--corruption must be 'noise' or 'resample', got {corruption!r}"), as_json)
    at: Any = int(heads_at) if heads_at.lstrip("-").isdigit() else heads_at
    if isinstance(at, str) and at not in ("subject_last", "last", "all"):
        raise fail(
            OptionError(f"--heads-at must be subject_last, last, all or a token position, got {heads_at!r}"), as_json
        )
    from circuitscope.analysis.tracing import causal_trace, trace_heads, trace_neurons
    from circuitscope.core.loading import load_model
    from circuitscope.progress import stages
    from circuitscope.report.tracing import strongest_cells, trace_report
    from circuitscope.tasks.facts import load_facts

    started = time.perf_counter()
    try:
        if fact is not None:
            facts = load_facts()
            if not 0 <= fact < len(facts):
                raise typer.BadParameter(f"--fact must be in 0..{len(facts) - 1} (see --list-facts), got {fact}")
            prompt, subject = facts[fact].prompt, facts[fact].subject
        if not prompt or not subject:
            raise typer.BadParameter("give --prompt and --subject (or --fact N; --list-facts shows the shipped set)")
        check_output_file(out, "--out")
        hooked = load_model(model)
        _check_after_load(hooked, prompt, at if heads else None, neurons)
        common: dict[str, Any] = {
            "corruption": corruption,
            "noise_scale": noise_scale,
            "n_samples": samples,
            "target": target or None,
            "seed": seed,
            "batch_rows": batch_rows,
        }
        kinds = ("resid", "mlp", "attn") if kind == "all" else (kind,)
        with stages("trace") as report:  # bars on a terminal, periodic lines otherwise (stderr, also under --json)
            common["on_progress"] = report
            traces = [causal_trace(hooked, prompt, subject, kind=k, window=window, **common) for k in kinds]  # type: ignore[arg-type]
            head_trace = trace_heads(hooked, prompt, subject, at=at, **common) if heads else None
            neuron_trace = (
                trace_neurons(hooked, prompt, subject, layer=neurons, candidates=candidates, **common)
                if neurons is not None
                else None
            )
    except typer.BadParameter as err:
        raise fail(err, as_json) from err
    except CircuitscopeError as err:
        raise fail(err, as_json) from err
    seconds = time.perf_counter() - started
    writes = Writes(as_json)
    path = writes.attempt(
        "the HTML report", out, lambda: trace_report(model, traces, head_trace, neuron_trace, seconds).write(out)
    )
    base = traces[0].baseline
    if as_json:
        writes.emit_json(
            {
                "model": model,
                "prompt": prompt,
                **base.to_dict(),
                "window": window,
                "traces": {
                    t.kind: {
                        "window": t.window,
                        "restored": t.restored.tolist(),
                        "indirect_effect": t.indirect_effect.tolist(),
                    }
                    for t in traces
                },
                "heads": head_trace.to_dict() if head_trace is not None else None,
                "neurons": neuron_trace.to_dict() if neuron_trace is not None else None,
                "report": path,
                "seconds": round(seconds, 1),
            }
        )
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    console.print(
        f"[bold]{escape(repr(prompt))}[/] -> {escape(repr(base.target))}: "
        f"p clean {base.clean_prob:.4f}, corrupted {base.corrupted_prob:.4f} "
        f"({corruption}, {base.n_samples} samples)",
        highlight=False,
    )
    for t in traces:
        cells = ", ".join(f"L{la} {base.tokens[p]!r} {e:+.3f}" for la, p, e in strongest_cells(t, 3))
        console.print(f"  {t.kind:5s} strongest: {cells}", highlight=False, markup=False)
    if head_trace is not None:
        console.print("  heads: " + ", ".join(f"L{la}H{h} {e:+.3f}" for la, h, e in head_trace.top(5)))
    if neuron_trace is not None:
        console.print(
            f"  layer {neuron_trace.layer} neurons: " + ", ".join(f"N{n} {e:+.3f}" for n, e in neuron_trace.top)
        )
    if path is not None:
        console.print(f"wrote {path} in {seconds:.0f} s", markup=False)
    writes.done()


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
