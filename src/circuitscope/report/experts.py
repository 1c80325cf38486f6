"""The routing report of a mixture-of-experts model: a heatmap of expert load per layer, a table per layer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from circuitscope.report.figures import layer_heatmap, round_numbers
from circuitscope.report.html import Report

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

    from circuitscope.analysis.experts import LayerRouting, RoutingStats

__all__ = ["add_routing_sections", "experts_report", "layer_rows", "plot_routing"]

ROUTING_COLUMNS = ["expert", "chosen", "share", "mean prob", "top tokens (router probability)"]


def plot_routing(stats: RoutingStats) -> Figure:
    """Heatmap of each expert's share of the routing choices, layer by layer (1/n_experts = balanced)."""
    fractions = [routing.fractions for routing in stats.layers]
    fig = layer_heatmap(
        [[f - 1 / stats.n_experts for f in row] for row in fractions],
        [str(e) for e in range(stats.n_experts)],
        [str(routing.layer) for routing in stats.layers],
        colorbar="share − 1/E",
        hovertemplate="layer %{y}, expert %{x}: %{z:+.3f} from balanced<extra></extra>",
        title=f"Expert load per layer: share of the {stats.n_tokens * stats.top_k} routing choices "
        f"minus 1/{stats.n_experts}",
        xaxis_title="expert",
    )
    return round_numbers(fig)


def layer_rows(routing: LayerRouting, top: int = 5) -> list[list[str]]:
    """One row per expert: how often it was chosen, its share, mean router probability, its top tokens."""
    rows = []
    for expert, count in enumerate(routing.counts):
        tokens = ", ".join(f"{t.token!r} {t.probability:.2f}" for t in routing.top_tokens[expert][:top])
        rows.append(
            [
                str(expert),
                str(count),
                f"{routing.fractions[expert]:.3f}",
                f"{routing.mean_probability[expert]:.3f}",
                tokens or "(never chosen)",
            ]
        )
    return rows


def add_routing_sections(report: Report, stats: RoutingStats, top: int = 5) -> None:
    """The routing heatmap, then one table per MoE layer, added to ``report``."""
    report.add_figure(
        "Expert load",
        plot_routing(stats),
        "Red: chosen more often than a balanced router would (1/n_experts of the choices); blue: less.",
    )
    for routing in stats.layers:
        report.add_table(
            f"Layer {routing.layer}",
            ROUTING_COLUMNS,
            layer_rows(routing, top),
            f"load balance {routing.balance:.3f} (entropy {routing.entropy:.3f} nats / log {stats.n_experts}); "
            "top tokens: the tokens that chose the expert with the highest router probability.",
        )


def experts_report(stats: RoutingStats, model: str, top: int = 5) -> Report:
    """A self-contained page: headline numbers, the load heatmap, and a table per MoE layer."""
    report = Report(
        f"Expert routing of {model}",
        f"{stats.n_texts} texts, {stats.n_tokens} tokens; {stats.n_experts} experts per layer, top-{stats.top_k}",
    )
    balances = [routing.balance for routing in stats.layers]
    report.add_kpis(
        "Corpus",
        {
            "tokens": str(stats.n_tokens),
            "MoE layers": str(len(stats.layers)),
            "experts": str(stats.n_experts),
            "top-k": str(stats.top_k),
            "least balanced layer": f"{min(balances):.3f}",
        },
    )
    add_routing_sections(report, stats, top)
    return report
