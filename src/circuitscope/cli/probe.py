"""``circuitscope probe``: truth probes by layer on the shipped true/false statements (logistic and CCS)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from circuitscope.cli._options import JsonFlag, LayersOpt, ModelOpt, OutOpt, SeedOpt
from circuitscope.cli._output import reporting_errors
from circuitscope.cli._paths import Writes, check_output_file
from circuitscope.cli._ranges import parse_layers
from circuitscope.core.loading import DEFAULT_MODEL

if TYPE_CHECKING:
    from circuitscope.probes import CCSSweep, ProbeSweep


def probe(
    model: ModelOpt = DEFAULT_MODEL,
    layers: LayersOpt = "all",
    hook: Annotated[str, typer.Option(help="Hook per layer (blocks.L.HOOK).")] = "hook_resid_post",
    n_per_topic: Annotated[int, typer.Option(help="Statements per topic (even, at most 72).", min=2, max=72)] = 72,
    ccs: Annotated[bool, typer.Option(help="Also fit CCS on 'This is true/false.' contrast pairs.")] = True,
    seed: SeedOpt = 0,
    out: OutOpt = Path("probe_report.html"),
    as_json: JsonFlag = False,
) -> None:
    """Probe accuracy by layer on true/false statements (capitals, arithmetic, comparisons)."""
    import torch

    from circuitscope.core.loading import load_model
    from circuitscope.probes import ccs_sweep, contrast_pairs, probe_sweep, true_false_statements
    from circuitscope.progress import stages

    with reporting_errors(as_json, ValueError, typer.BadParameter):
        statements = true_false_statements(n_per_topic, seed)  # bad sizes fail before the model loads
        check_output_file(out, "--out")
        hooked = load_model(model)
        layer_list = parse_layers(layers, hooked.cfg.n_layers)
        hooks = [f"blocks.{i}.{hook}" for i in layer_list]
        for h in hooks:
            hooked.hook_point(h)
        groups = [s.pair_id for s in statements]  # a statement and its false twin stay on one side of the split
        with torch.no_grad(), stages("probe") as on_progress:  # progress on stderr, also under --json
            texts, labels = [s.text for s in statements], [s.label for s in statements]
            sweep = probe_sweep(hooked, texts, labels, hooks, seed=seed, groups=groups, on_progress=on_progress)
            ccs_result = None
            if ccs:
                pos, neg, labels = contrast_pairs(statements)
                ccs_result = ccs_sweep(
                    hooked, pos, neg, labels, hooks, seed=seed, groups=groups, on_progress=on_progress
                )
    from circuitscope.report.probes import probe_report

    report = probe_report(sweep, ccs_result, model=model, n_statements=len(statements), hook=hook)
    writes = Writes(as_json)
    path = writes.attempt("the HTML report", out, lambda: report.write(out))
    payload = {
        "model": model,
        "n_statements": len(statements),
        "logistic": sweep.to_dict(),
        "ccs": ccs_result.to_dict() if ccs_result else None,
        "report": path,
    }
    if as_json:
        writes.emit_json(payload)
        return
    _print(hooks, sweep, ccs_result, path)
    writes.done()


def _print(hooks: list[str], sweep: ProbeSweep, ccs_result: CCSSweep | None, path: str | None) -> None:
    from rich.console import Console

    console = Console()
    for i, h in enumerate(hooks):
        extra = f", CCS {float(ccs_result.test_accuracy[i]):.3f}" if ccs_result else ""
        console.print(f"{h}: held-out {float(sweep.test_accuracy[i]):.3f}{extra}", markup=False)
    if path is not None:
        console.print(f"report: {path}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("probe")(probe)
