"""The maze lab's report: training, goal misgeneralization with maze renderings (inline SVG), the cheese vector's
effect by layer and the cheese-location probe by layer."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from circuitscope.report.figures import round_numbers, titled
from circuitscope.report.html import Report
from circuitscope.toy.maze.cheese_vector import STOPS_WORKING, VectorSource
from circuitscope.toy.maze.lab import MazeResult
from circuitscope.toy.maze.rollouts import Episode

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

__all__ = ["maze_report", "maze_svg", "plot_cheese_vector", "plot_probe"]

_SQUARE = 14
_SOURCES: dict[VectorSource, str] = {
    "averaged": "averaged over other mazes",
    "same_maze": "the maze's own (mouse at the start)",
}


def maze_svg(episode: Episode) -> str:
    """One episode drawn as an SVG: walls dark, the cheese yellow, the top-right corner outlined in red, the
    mouse's path in blue from its start (green)."""
    maze, s = episode.maze, _SQUARE
    n = maze.size
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{n * s}" height="{n * s}" viewBox="0 0 {n * s} {n * s}" '
        'style="border:2px solid #2b3142">'
    ]
    parts.append(f'<rect width="{n * s}" height="{n * s}" fill="#ffffff"/>')
    for r in range(n):
        for c in range(n):
            if maze.walls[r][c]:
                parts.append(f'<rect x="{c * s}" y="{r * s}" width="{s}" height="{s}" fill="#2b3142"/>')
    cr, cc = maze.corner
    parts.append(
        f'<rect x="{cc * s + 1}" y="{cr * s + 1}" width="{s - 2}" height="{s - 2}" fill="none" stroke="#d62828" '
        'stroke-width="2"/>'
    )
    if maze.cheese is not None:
        yr, yc = maze.cheese
        parts.append(f'<circle cx="{yc * s + s / 2}" cy="{yr * s + s / 2}" r="{s / 2.6}" fill="#f4c20d"/>')
    points = " ".join(f"{c * s + s / 2},{r * s + s / 2}" for r, c in episode.path)
    parts.append(f'<polyline points="{points}" fill="none" stroke="#3558d4" stroke-width="2.5" stroke-opacity="0.75"/>')
    sr, sc = episode.path[0]
    parts.append(f'<circle cx="{sc * s + s / 2}" cy="{sr * s + s / 2}" r="{s / 3.5}" fill="#2a9d8f"/>')
    parts.append("</svg>")
    return "".join(parts)


def _episodes_html(episodes: list[Episode]) -> str:
    cards = []
    for e in episodes:
        outcome = "went to the corner first" if e.corner_first else "got the cheese" if e.got_cheese else "neither"
        caption = f"{e.maze.size}x{e.maze.size}, {len(e.path) - 1} moves: {outcome}"
        cards.append(
            f'<figure style="display:inline-block;margin:8px 14px 8px 0;vertical-align:top">{maze_svg(e)}'
            f'<figcaption class="caption">{html.escape(caption)}</figcaption></figure>'
        )
    return "<div>" + "".join(cards) + "</div>"


def plot_training(result: MazeResult) -> Figure:
    """The training loss of every step and the checkpoint curve (held-out accuracy or episode success)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_scatter(x=list(range(1, len(result.train_loss) + 1)), y=result.train_loss, name="training loss")
    fig.add_scatter(
        x=result.curve_steps,
        y=result.curve,
        name=result.curve_name.replace("_", " "),
        secondary_y=True,
        mode="lines+markers",
    )
    fig.update_yaxes(title_text="loss", secondary_y=False)
    fig.update_yaxes(title_text=result.curve_name.replace("_", " "), range=[0, 1], secondary_y=True)
    return round_numbers(titled(fig, f"training ({result.method})", "step"))


def plot_outcomes(result: MazeResult) -> Figure:
    import plotly.graph_objects as go

    g = result.misgeneralization
    labels = ["got the cheese", "corner before cheese", "corner, never cheese", "neither", "cheese in training region"]
    values = [g.got_cheese, g.corner_first, g.corner_not_cheese, g.neither, g.train_region_got_cheese]
    fig = go.Figure(go.Bar(x=labels, y=values, marker_color=["#2a9d8f", "#d62828", "#e76f51", "#8d99ae", "#3558d4"]))
    return round_numbers(
        titled(fig, f"test episodes ({g.n_episodes}, cheese outside the training region)", "", "share")
    )


def plot_cheese_vector(result: MazeResult) -> Figure:
    """The share of the cheese's effect that subtracting each vector removes, by layer (1 = all of it)."""
    import plotly.graph_objects as go

    sweep = result.cheese_vector
    fig = go.Figure()
    for source, label in _SOURCES.items():
        fig.add_scatter(x=sweep.layers, y=sweep.removed(source), name=label, mode="lines+markers")
    fig.add_hline(y=STOPS_WORKING, line_dash="dot", annotation_text="stops working below")
    fig.add_hline(y=0, line_color="#8d99ae")
    return round_numbers(
        titled(fig, "cheese vector subtracted: share of the cheese's effect removed", "layer (hook point)", "removed")
    )


def plot_probe(result: MazeResult) -> Figure:
    import plotly.graph_objects as go

    probe = result.probe
    fig = go.Figure()
    fig.add_scatter(x=probe.layers, y=probe.test_accuracy, name="held out", mode="lines+markers")
    fig.add_scatter(x=probe.layers, y=probe.train_accuracy, name="train", mode="lines+markers")
    fig.add_hline(y=probe.chance, line_dash="dot", annotation_text="chance")
    return round_numbers(
        titled(fig, "linear probe for the cheese's square", "layer (hook point)", "accuracy", yaxis_range=[0, 1.05])
    )


def _answer(result: MazeResult) -> list[str]:
    sweep = result.cheese_vector
    lines = []
    for source, label in _SOURCES.items():
        where = sweep.stops_working[source]
        removed = ", ".join(
            f"{layer} {value:.2f}" for layer, value in zip(sweep.layers, sweep.removed(source), strict=True)
        )
        if where is None:
            verdict = "it keeps working up to the last layer"
        elif where == sweep.layers[0]:
            verdict = (
                f"it removes less than {STOPS_WORKING:.0%} of the cheese's effect at every layer, the input included"
            )
        else:
            verdict = (
                f"it stops working at {where} (from there on it removes less than {STOPS_WORKING:.0%} of the effect)"
            )
        lines.append(f"The vector {label}: {verdict}. Share removed by layer: {removed}.")
    first = sweep.effects[0]
    lines.append(
        f"At the decision squares of {sweep.n_mazes} test mazes the policy moves toward the cheese with probability "
        f"{first.p_cheese:.2f}, {first.p_no_cheese:.2f} once the cheese is removed. Trained by {result.method}."
    )
    return lines


def maze_report(result: MazeResult) -> Report:
    c, g = result.config, result.misgeneralization
    report = Report(
        title="A maze policy: goal misgeneralization and the cheese vector",
        subtitle=f"mazes {c.min_size}-{c.max_size} squares, training cheese in the top-right {c.cheese_region}x"
        f"{c.cheese_region}, IMPALA blocks {list(c.channels)} x {c.residual_units} residual units, hidden {c.hidden}, "
        f"{c.method}, {c.steps} steps, seed {c.seed}",
    )
    report.add_kpis(
        "Summary",
        {
            "got the cheese (test)": f"{g.got_cheese:.0%}",
            "corner before cheese": f"{g.corner_first:.0%}",
            "cheese in training region": f"{g.train_region_got_cheese:.0%}",
            "best probe layer": result.probe.best_layer(),
            "training (s)": f"{result.train_seconds:.0f}",
            "threads": str(result.threads),
        },
    )
    report.add_answer("At which layer does subtracting the cheese vector stop working?", _answer(result))
    report.add_figure(
        "Cheese vector by layer",
        plot_cheese_vector(result),
        "removed = (p_cheese - p_subtracted) / (p_cheese - p_no_cheese) of the move toward the cheese at decision "
        "squares. At hook_in the maze's own vector is exactly the cheese channel: the trivial baseline.",
    )
    report.add_figure(
        "Goal misgeneralization",
        plot_outcomes(result),
        "Actions sampled from the policy; an episode went to the corner when it reached the top-right square before "
        "the cheese. The last bar: the same mazes with the cheese moved to the corner (the training distribution).",
    )
    report.add_html("Typical test episodes", _episodes_html(result.episodes))
    report.add_figure("Cheese location probe by layer", plot_probe(result))
    report.add_figure(
        "Training", plot_training(result), f"Every figure here comes from the policy trained by {result.method}."
    )
    return report
