"""Prompt-variant evaluations: the same questions under several framings, scored by answer log-probabilities.

The questions and framings are :mod:`circuitscope.evals.items`'s. Under each framing, each option is
scored as the summed log-probability of its tokens after the framed prompt (options get a leading space).
The effect of a framing is its mean difference from the first (baseline) framing on the same questions,
with a paired 95% bootstrap interval.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float

from circuitscope.evals.items import DEFAULT_FRAMINGS, EvalItem, EvalSetError, Framing
from circuitscope.progress import OnProgress, track

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["FramingScore", "PromptVariantResult", "bootstrap_ci", "evaluate_prompt_variants"]


def bootstrap_ci(values: Float[torch.Tensor, " n"], n_boot: int, seed: int) -> tuple[float, float]:
    """The 95% percentile-bootstrap interval ``(low, high)`` of the mean of ``values`` (``n_boot`` resamples).

    For a paired comparison pass the per-item differences: the same resample of items is then used for
    both sides, which is what makes the interval paired.
    """
    g = torch.Generator().manual_seed(seed)
    n = values.shape[0]
    idx = torch.randint(0, n, (n_boot, n), generator=g)
    means = values[idx].mean(1)
    return float(means.quantile(0.025)), float(means.quantile(0.975))


@dataclass(frozen=True)
class FramingScore:
    """One framing's scores over the questions (means, with 95% bootstrap intervals as ``(low, high)``)."""

    framing: str
    accuracy: float
    """Share of questions whose answer has the highest log-probability."""
    accuracy_ci95: tuple[float, float]
    p_answer: float
    """Mean probability of the answer, renormalised over the options."""
    p_answer_ci95: tuple[float, float]
    margin: float
    """Mean answer log-prob minus the best other option's."""
    margin_ci95: tuple[float, float]
    effect_p_answer_vs_baseline: float
    """Mean paired difference of p(answer) from the first framing's."""
    effect_ci95: tuple[float, float]

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class PromptVariantResult:
    framings: list[str]
    questions: list[str]
    option_logprobs: list[list[list[float]]]
    """[framing][question][option] summed log-probabilities."""
    correct: Float[torch.Tensor, "framing question"]
    """1 if the answer has the highest log-probability."""
    p_answer: Float[torch.Tensor, "framing question"]
    """Probability of the answer renormalised over the options."""
    margin: Float[torch.Tensor, "framing question"]
    """Answer log-prob minus the best other option's."""
    n_boot: int
    seed: int

    def _ci(self, values: torch.Tensor) -> tuple[float, float]:
        return bootstrap_ci(values, self.n_boot, self.seed)

    def scores(self) -> list[FramingScore]:
        """Per framing: accuracy, mean p(answer), mean margin with 95% CIs, and the paired effect vs the first."""
        rows = []
        for f, name in enumerate(self.framings):
            diff = self.p_answer[f] - self.p_answer[0]
            rows.append(
                FramingScore(
                    framing=name,
                    accuracy=float(self.correct[f].mean()),
                    accuracy_ci95=self._ci(self.correct[f]),
                    p_answer=float(self.p_answer[f].mean()),
                    p_answer_ci95=self._ci(self.p_answer[f]),
                    margin=float(self.margin[f].mean()),
                    margin_ci95=self._ci(self.margin[f]),
                    effect_p_answer_vs_baseline=float(diff.mean()),
                    effect_ci95=self._ci(diff),
                )
            )
        return rows

    def table(self) -> list[dict[str, Any]]:
        """:meth:`scores` as JSON-ready rows (intervals as ``[low, high]`` lists)."""
        return [row.to_json() for row in self.scores()]

    def to_dict(self) -> dict[str, Any]:
        return {"framings": self.framings, "n_questions": len(self.questions), "table": self.table()}


@torch.no_grad()
def _option_logprobs(model: HookedModel, prompt: str, options: Sequence[str]) -> list[float]:
    prefix = model.tok.encode(prompt)
    rows = [prefix + model.tok.encode(" " + o, prepend_bos=False) for o in options]
    width = max(len(r) for r in rows)
    pad = model.tok.pad_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    logits = model(ids.to(model.device), attention_mask=mask.to(model.device) if not bool(mask.all()) else None)
    logp = logits.float().log_softmax(-1).cpu()
    out = []
    for i, r in enumerate(rows):
        positions = range(len(prefix) - 1, len(r) - 1)
        out.append(float(sum(logp[i, p, r[p + 1]] for p in positions)))
    return out


def evaluate_prompt_variants(
    model: HookedModel,
    items: Sequence[EvalItem],
    framings: Sequence[Framing] = tuple(DEFAULT_FRAMINGS),
    *,
    n_boot: int = 2000,
    seed: int = 0,
    on_progress: OnProgress | None = None,
) -> PromptVariantResult:
    """Score every item under every framing (the first framing is the baseline of the effect).

    Progress: stage ``"scoring"``, one unit a (framing, question).
    """
    if not items:
        raise EvalSetError("no questions to evaluate")
    if len(framings) < 1:
        raise EvalSetError("give at least one framing")
    names = [f.name for f in framings]
    if len(set(names)) != len(names):
        raise EvalSetError(f"framing names must be unique: {names}")
    scores: list[list[list[float]]] = []
    work = [(f, it) for f in framings for it in items]
    flat = [_option_logprobs(model, f.render(it.question), it.options) for f, it in track(work, "scoring", on_progress)]
    for fi in range(len(framings)):
        scores.append(flat[fi * len(items) : (fi + 1) * len(items)])
    correct = torch.zeros(len(framings), len(items))
    p_ans = torch.zeros(len(framings), len(items))
    margin = torch.zeros(len(framings), len(items))
    for fi in range(len(framings)):
        for qi, it in enumerate(items):
            lp = torch.tensor(scores[fi][qi])
            a = it.options.index(it.answer)
            correct[fi, qi] = float(int(lp.argmax()) == a)
            p_ans[fi, qi] = float(lp.softmax(0)[a])
            others = torch.cat([lp[:a], lp[a + 1 :]])
            margin[fi, qi] = float(lp[a] - others.max())
    return PromptVariantResult(names, [it.question for it in items], scores, correct, p_ans, margin, n_boot, seed)
