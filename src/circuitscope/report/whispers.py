"""The whispers study's report: accuracy per readout and by position against the floors, and sampled guesses."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from circuitscope.report.figures import titled
from circuitscope.report.html import Report, token_html
from circuitscope.report.studies import estimate_bars

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

    from circuitscope.studies.whispers import Reconstruction, WhispersResult

__all__ = ["whispers_report"]


def _accuracy_figure(result: WhispersResult) -> Figure:
    import plotly.graph_objects as go

    names = [s.readout.name for s in result.scores] + ["most frequent token", "most frequent per position"]
    estimates = [s.accuracy for s in result.scores] + [result.unigram, result.by_position_baseline]
    fig = go.Figure([estimate_bars(names, estimates, "accuracy")])
    fig.add_hline(y=result.coverage, line_dash="dot", annotation_text="vocabulary coverage (ceiling)")
    return titled(fig, "Held-out tokens recovered (95% bootstrap CI)", "readout", "accuracy", yaxis_range=[0, 1])


def _position_figure(result: WhispersResult) -> Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    for s in result.scores:
        fig.add_trace(
            go.Scatter(
                x=list(range(len(s.by_position))),
                y=[e.mean for e in s.by_position],
                name=s.readout.name,
                mode="lines+markers",
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=[e.high - e.mean for e in s.by_position],
                    arrayminus=[e.mean - e.low for e in s.by_position],
                ),
            )
        )
    return titled(fig, "Accuracy by position (95% bootstrap CI)", "position after BOS", "accuracy", yaxis_range=[0, 1])


def _example_html(example: Reconstruction, result: WhispersResult) -> str:
    """The original, then each readout's sampled guesses with the tokens it got right shaded."""
    rows = [f"<p><b>original</b><br>{token_html(example.original)}</p>"]
    for score, guesses, recovered in zip(result.scores, example.guesses, example.recovered, strict=True):
        lines = "<br>".join(
            token_html(g, [1.0 if a == b else 0.0 for a, b in zip(g, example.original, strict=True)], vmax=1.0)
            for g in guesses
        )
        head = f"{html.escape(score.readout.name)} (argmax recovers {recovered:.0%})"
        rows.append(f"<p><b>{head}</b><br>{lines}</p>")
    return "".join(rows)


def whispers_report(result: WhispersResult, *, model: str) -> Report:
    """The report of ``circuitscope study whispers``."""
    from circuitscope.studies.whispers import QUESTION

    cfg = result.config
    report = Report("Study: what does half a layer remember?", f"{model} · {len(result.scores)} decoders")
    report.add_answer("Answer", [result.answer()])
    report.add_text(
        "Question and method",
        [
            QUESTION,
            "Each readout LAYER:HALF is the residual stream entering block LAYER (blocks.LAYER.hook_resid_pre): "
            "its low half (dimensions 0..d/2-1), its high half (d/2..d-1), a random half (seed "
            f"{cfg.seed}) or all of it. The residual basis is not privileged, so the random half is the fair "
            "comparison for any fixed half.",
            f"A non-causal transformer decoder ({cfg.decoder_layers} blocks, width {cfg.d_decoder}) per readout "
            "reads the whole read sequence and predicts every input token over the training text's "
            f"{cfg.vocab_size - 1} most frequent tokens plus 'other'. All decoders train together from one model "
            f"forward per step: {result.steps} steps of {cfg.batch_contexts} contexts of {cfg.context_size} tokens, "
            f"{result.train_tokens:,} tokens from {result.n_train_documents} documents ({result.seconds:.0f} s on "
            f"{result.threads} torch thread(s)). Scored on "
            f"{result.n_test_tokens:,} tokens of {result.n_test_documents} held-out documents; intervals: "
            f"{cfg.n_boot} bootstrap resamples of the held-out contexts, paired for differences.",
        ],
    )
    report.add_kpis(
        "Headline",
        {
            f"{result.scores[0].readout.name} accuracy": result.scores[0].accuracy.text(),
            "most frequent token": result.unigram.text(),
            "vocabulary coverage": f"{result.coverage:.3f}",
            "training time": f"{result.seconds:.0f} s",
        },
    )
    report.add_figure("Accuracy by readout", _accuracy_figure(result))
    report.add_figure("Accuracy by position", _position_figure(result))
    report.add_table(
        "Numbers (mean [95% CI])",
        ["readout", "hook", "dims", "accuracy", f"minus {result.scores[0].readout.name}", "held-out loss"],
        [
            [s.readout.name, s.readout.hook, s.n_dims, s.accuracy.text(), s.vs_first.text(), f"{s.test_loss:.3f}"]
            for s in result.scores
        ],
        caption=f"Floors: the most frequent token {result.unigram.text()}, the most frequent at each position "
        f"{result.by_position_baseline.text()}.",
    )
    temperature = "the argmax" if cfg.temperature == 0 else f"temperature {cfg.temperature}"
    for i, example in enumerate(result.examples):
        report.add_html(
            f"Held-out input {i + 1}: {cfg.n_samples} sampled guesses per readout ({temperature})",
            _example_html(example, result),
        )
    return report
