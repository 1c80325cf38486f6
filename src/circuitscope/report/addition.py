"""The addition lab's report: per-digit loss curves with each digit's phase change, and the heads of each carry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from circuitscope.report.figures import titled
from circuitscope.report.html import Report

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

    from circuitscope.toy.addition_lab import AdditionResult

__all__ = ["addition_report", "plot_carry_effects", "plot_digit_losses", "plot_wrong_carry"]


def _digit_name(d: int, n_digits: int) -> str:
    return "final carry" if d == n_digits else ("units" if d == 0 else f"10^{d}")


def plot_digit_losses(result: AdditionResult) -> Figure:
    """Held-out loss of every answer digit over training (log scale), each digit's phase change shaded."""
    import plotly.graph_objects as go

    n = result.config.n_digits
    fig = go.Figure()
    for d in range(n + 1):
        fig.add_trace(
            go.Scatter(x=result.steps, y=[row[d] for row in result.digit_loss], name=_digit_name(d, n), mode="lines")
        )
    for change in result.phase_changes:
        if change.start is None or change.end is None:
            continue
        fig.add_vrect(x0=change.start, x1=change.end, opacity=0.12, line_width=0, fillcolor="gray")
    return titled(
        fig,
        "Loss of each answer digit (shaded: where it first falls below half of the digit's entropy)",
        "step",
        "loss",
        yaxis_type="log",
    )


def plot_carry_effects(result: AdditionResult, carry: bool) -> Figure:
    """[head, digit] loss increase with the head mean-ablated, on problems whose column does (not) carry in."""
    import plotly.graph_objects as go

    grid = result.ablation_carry if carry else result.ablation_no_carry
    n = result.config.n_digits
    heads = [f"L{layer}H{head}" for layer in range(len(grid)) for head in range(len(grid[layer]))]
    z = [per_digit for layer in grid for per_digit in layer]
    fig = go.Figure(go.Heatmap(z=z, x=[_digit_name(d, n) for d in range(n + 1)], y=heads, colorscale="Reds"))
    kind = "with a carry in" if carry else "without a carry in"
    return titled(fig, f"Loss increase when a head is mean-ablated, problems {kind}", "answer digit", "head")


def plot_wrong_carry(result: AdditionResult) -> Figure:
    """[head, digit] probability moved to the answer of the opposite carry when the head is mean-ablated."""
    import plotly.graph_objects as go

    grid = result.ablation_wrong_carry
    n = result.config.n_digits
    heads = [f"L{layer}H{head}" for layer in range(len(grid)) for head in range(len(grid[layer]))]
    z = [per_digit for layer in grid for per_digit in layer]
    fig = go.Figure(go.Heatmap(z=z, x=[_digit_name(d, n) for d in range(n + 1)], y=heads, colorscale="Blues"))
    return titled(
        fig, "Probability moved to the opposite carry's answer when a head is mean-ablated", "answer digit", "head"
    )


def addition_report(result: AdditionResult) -> Report:
    """The report of ``circuitscope lab addition``."""
    cfg = result.config
    n = cfg.n_digits
    report = Report(
        f"{n}-digit addition: a phase change per digit",
        f"{cfg.n_layers} layers, d_model {cfg.d_model}, {cfg.n_heads} heads, {cfg.steps} steps of {cfg.batch_size} "
        f"problems, {result.threads} thread(s)",
    )
    learned = sorted((c for c in result.phase_changes if c.end is not None), key=lambda c: c.end or 0)
    missing = [_digit_name(c.digit, n) for c in result.phase_changes if c.end is None]
    text = (
        f"Held-out accuracy (every digit right) {result.accuracy[-1]:.3f} after {result.steps[-1]} steps. "
        "Each digit's loss falls at its own step: "
        + ("; ".join(f"{_digit_name(c.digit, n)} at {c.start}-{c.end}" for c in learned) or "none fell")
        + "."
    )
    if missing:
        text += f" Not learned in this run (the loss never fell below half of its entropy): {', '.join(missing)}."
    report.add_answer("What the run shows", [text])
    report.add_figure("Per-digit loss", plot_digit_losses(result))
    report.add_table(
        "Phase changes (the checkpoints between which the loss first falls below half of the digit's entropy; "
        "'-': not learned)",
        ["digit", "from step", "to step", "loss before", "loss after", "final loss"],
        [
            [_digit_name(c.digit, n), c.start or "-", c.end or "-", c.loss_before, c.loss_after, c.final_loss]
            for c in result.phase_changes
        ],
    )
    report.add_figure("Which heads bring each digit its carry", plot_wrong_carry(result))
    report.add_figure("Heads on carry problems", plot_carry_effects(result, True))
    report.add_figure("Heads on problems without a carry", plot_carry_effects(result, False))
    report.add_table(
        "The heads of each digit's carry (ablated, they move the most probability to the opposite carry's answer)",
        ["digit", "heads"],
        [
            [_digit_name(d, n), ", ".join(f"L{layer}H{head}" for layer, head in heads)]
            for d, heads in result.carry_heads().items()
        ],
    )
    return report
