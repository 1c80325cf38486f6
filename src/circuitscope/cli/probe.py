"""``circuitscope probe``: truth probes by layer on the shipped true/false statements (logistic and CCS)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from circuitscope.cli._paths import Writes, check_output_file
from circuitscope.cli.output import fail
from circuitscope.core.loading import DEFAULT_MODEL
from circuitscope.errors import CircuitscopeError

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout.")]


def probe(
    model: Annotated[str, typer.Option(help="Hub id, model folder, .gguf, or the embedded default.")] = DEFAULT_MODEL,
    layers: Annotated[str, typer.Option(help="Layers: 'all', '2-12' or '0,4,8'.")] = "all",
    hook: Annotated[str, typer.Option(help="Hook per layer (blocks.L.HOOK).")] = "hook_resid_post",
    n_per_topic: Annotated[int, typer.Option(help="Statements per topic (even, at most 72).", min=2, max=72)] = 72,
    ccs: Annotated[bool, typer.Option(help="Also fit CCS on 'This is true/false.' contrast pairs.")] = True,
    seed: Annotated[int, typer.Option(help="Seed of the data set and split.")] = 0,
    out: Annotated[Path, typer.Option(help="Where to write the HTML report.")] = Path("probe_report.html"),
    as_json: JsonFlag = False,
) -> None:
    """Probe accuracy by layer on true/false statements (capitals, arithmetic, comparisons)."""
    import torch

    from circuitscope.cli._ranges import parse_layers
    from circuitscope.core.loading import load_model
    from circuitscope.probes import ccs_sweep, contrast_pairs, plot_probe_sweep, probe_sweep, true_false_statements

    try:
        statements = true_false_statements(n_per_topic, seed)  # bad sizes fail before the model loads
        check_output_file(out, "--out")
        hooked = load_model(model)
        layer_list = parse_layers(layers, hooked.cfg.n_layers)
        hooks = [f"blocks.{i}.{hook}" for i in layer_list]
        for h in hooks:
            hooked.hook_point(h)
        groups = [s.pair_id for s in statements]  # a statement and its false twin stay on one side of the split
        with torch.no_grad():
            sweep = probe_sweep(
                hooked, [s.text for s in statements], [s.label for s in statements], hooks, seed=seed, groups=groups
            )
            ccs_result = None
            if ccs:
                pos, neg, labels = contrast_pairs(statements)
                ccs_result = ccs_sweep(hooked, pos, neg, labels, hooks, seed=seed, groups=groups)
    except (CircuitscopeError, ValueError, typer.BadParameter) as err:
        raise fail(err, as_json) from err
    from circuitscope.report.html import Report

    report = Report("Truth probes by layer", f"{model} · {len(statements)} statements · blocks.L.{hook}, last token")
    report.add_figure("Accuracy by layer", plot_probe_sweep(sweep, ccs_result))
    report.add_table(
        "Per layer",
        ["hook", "logistic train", "logistic held out"] + (["CCS held out"] if ccs_result else []),
        [
            [h, float(sweep.train_accuracy[i]), float(sweep.test_accuracy[i])]
            + ([float(ccs_result.test_accuracy[i])] if ccs_result else [])
            for i, h in enumerate(hooks)
        ],
    )
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
    from rich.console import Console

    console = Console()
    for i, h in enumerate(hooks):
        extra = f", CCS {float(ccs_result.test_accuracy[i]):.3f}" if ccs_result else ""
        console.print(f"{h}: held-out {float(sweep.test_accuracy[i]):.3f}{extra}", markup=False)
    if path is not None:
        console.print(f"report: {path}", markup=False)
    writes.done()


def register(app: typer.Typer) -> None:
    app.command("probe")(probe)
