"""The HTML report of a transcoder evaluation (``circuitscope transcoders eval --html``).

Built from :class:`~circuitscope.transcoders.evaluate.TranscoderEvalResult`: the replacement model's headline
numbers (next-token cross-entropy, KL from the real model, top-1 agreement, without and with the error terms),
a figure of each layer's fraction of variance unexplained and dead fraction, and the per-layer table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from circuitscope.report.figures import round_numbers, titled
from circuitscope.report.html import Report

if TYPE_CHECKING:
    from circuitscope.transcoders.evaluate import TranscoderEvalResult

__all__ = ["plot_layer_quality", "transcoders_eval_report"]


def plot_layer_quality(result: TranscoderEvalResult) -> Any:
    """Bars of each layer's FVU and dead fraction (both fractions, 0 is best), L0 in the hover."""
    import plotly.graph_objects as go

    layers = [f"L{e.layer}" for e in result.layers]
    l0 = [[e.l0] for e in result.layers]
    fig = go.Figure(
        [
            go.Bar(name="FVU", x=layers, y=[e.fvu for e in result.layers], marker_color="#3558d4", customdata=l0,
                   hovertemplate="%{x}: FVU %{y}<br>L0 %{customdata[0]}<extra></extra>"),
            go.Bar(name="dead fraction", x=layers, y=[e.dead_fraction for e in result.layers],
                   marker_color="#d44035", hovertemplate="%{x}: %{y} of the features never fired<extra></extra>"),
        ]
    )  # fmt: skip
    fig = titled(fig, "Per layer: variance unexplained and dead features", "layer", "fraction", barmode="group")
    fig.update_layout(height=340, margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return round_numbers(fig)


def transcoders_eval_report(result: TranscoderEvalResult, model: str, folder: str) -> Report:
    """The report of ``result`` (transcoders of ``folder`` on ``model``)."""
    r, e = result.replaced, result.replaced_with_error
    report = Report(
        "Transcoder evaluation",
        f"{folder} on {model}: {len(result.layers)} layers, {result.tokens:,} evaluation tokens",
    )
    report.add_kpis(
        "Every MLP replaced",
        {
            "CE real (nats)": f"{result.ce_real:.4g}",
            "CE replaced": f"{r.ce:.4g}",
            "KL replaced": f"{r.kl:.4g}",
            "agreement replaced": f"{r.agreement:.1%}",
            "CE with errors": f"{e.ce:.4g}",
            "agreement with errors": f"{e.agreement:.1%}",
        },
    )
    report.add_table(
        "The replacement model against the real model",
        ["model", "next-token CE (nats)", "KL(real || model) per position", "top-1 agreement"],
        [
            ["real", result.ce_real, 0.0, 1.0],
            ["every MLP replaced", r.ce, r.kl, r.agreement],
            ["replaced, with the error terms", e.ce, e.kl, e.agreement],
        ],
        "Every covered MLP's output replaced by its transcoder's estimate, the errors compounding through the "
        "layers; with the error terms added back the model is the real one, up to float rounding.",
    )
    report.add_figure(
        "Per layer",
        plot_layer_quality(result),
        "Open loop: each transcoder reads the real model's MLP input and is compared with the real MLP output.",
    )
    report.add_table(
        "Per-layer figures",
        ["layer", "FVU", "L0 (active features per token)", "dead fraction"],
        [[x.layer, x.fvu, x.l0, x.dead_fraction] for x in result.layers],
        "FVU: the fraction of the MLP output's variance the estimate leaves unexplained. Dead: features that "
        "never fired on the evaluation tokens (few tokens overstate it).",
    )
    return report
