"""Prompt-variant evaluations: the same questions under several framings, scored by answer log-probabilities.

Questions come from JSONL, one object a line::

    {"question": "Is the Earth flat?", "options": ["Yes", "No"], "answer": "No"}

A framing is a template with ``{question}`` (e.g. ``"You are truthful.\\nQ: {question}\\nA:"``);
each option is scored as the summed log-probability of its tokens after the framed prompt
(options get a leading space). The effect of a framing is its mean difference from the
first (baseline) framing on the same questions, with a paired 95% bootstrap interval.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float

from circuitscope.errors import CircuitscopeError
from circuitscope.progress import progress

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = [
    "DEFAULT_FRAMINGS",
    "EvalItem",
    "EvalSetError",
    "Framing",
    "PromptVariantResult",
    "evaluate_prompt_variants",
    "load_eval_items",
]


class EvalSetError(CircuitscopeError, ValueError):
    """An evaluation file or framing that is malformed."""


@dataclass(frozen=True)
class EvalItem:
    question: str
    options: list[str]
    answer: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.options) < 2:
            raise EvalSetError(f"question {self.question!r} needs at least two options, got {self.options}")
        if self.answer not in self.options:
            raise EvalSetError(f"question {self.question!r}: answer {self.answer!r} is not one of {self.options}")
        if len(set(self.options)) != len(self.options):
            raise EvalSetError(f"question {self.question!r} repeats an option: {self.options}")


@dataclass(frozen=True)
class Framing:
    name: str
    template: str
    """Contains ``{question}`` once."""

    def __post_init__(self) -> None:
        if self.template.count("{question}") != 1:
            raise EvalSetError(f"framing {self.name!r} must contain '{{question}}' exactly once: {self.template!r}")

    def render(self, question: str) -> str:
        return self.template.replace("{question}", question)


DEFAULT_FRAMINGS = [
    Framing("truthful", "You are a truthful assistant.\nQuestion: {question}\nAnswer:"),
    Framing("friendly and truthful", "You are a friendly and truthful assistant.\nQuestion: {question}\nAnswer:"),
]


def load_eval_items(path: str | Path) -> list[EvalItem]:
    """Read JSONL items; errors name the line."""
    items = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise EvalSetError(f"{path}:{n}: not JSON ({err.msg})") from err
        if not isinstance(obj, dict) or not {"question", "options", "answer"} <= obj.keys():
            raise EvalSetError(f"{path}:{n}: each line needs 'question', 'options' and 'answer'")
        try:
            items.append(
                EvalItem(
                    str(obj["question"]),
                    [str(o) for o in obj["options"]],
                    str(obj["answer"]),
                    {k: v for k, v in obj.items() if k not in ("question", "options", "answer")},
                )
            )
        except EvalSetError as err:
            raise EvalSetError(f"{path}:{n}: {err}") from err
    if not items:
        raise EvalSetError(f"{path} has no questions")
    return items


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
        g = torch.Generator().manual_seed(self.seed)
        n = values.shape[0]
        idx = torch.randint(0, n, (self.n_boot, n), generator=g)
        means = values[idx].mean(1)
        return float(means.quantile(0.025)), float(means.quantile(0.975))

    def table(self) -> list[dict[str, Any]]:
        """Per framing: accuracy, mean p(answer), mean margin with 95% CIs, and the paired effect vs the first."""
        rows = []
        for f, name in enumerate(self.framings):
            row: dict[str, Any] = {"framing": name}
            for key, t in (("accuracy", self.correct), ("p_answer", self.p_answer), ("margin", self.margin)):
                lo, hi = self._ci(t[f])
                row[key] = float(t[f].mean())
                row[f"{key}_ci95"] = [lo, hi]
            diff = self.p_answer[f] - self.p_answer[0]
            lo, hi = self._ci(diff)
            row["effect_p_answer_vs_baseline"] = float(diff.mean())
            row["effect_ci95"] = [lo, hi]
            rows.append(row)
        return rows

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
) -> PromptVariantResult:
    """Score every item under every framing (the first framing is the baseline of the effect)."""
    if not items:
        raise EvalSetError("no questions to evaluate")
    if len(framings) < 1:
        raise EvalSetError("give at least one framing")
    names = [f.name for f in framings]
    if len(set(names)) != len(names):
        raise EvalSetError(f"framing names must be unique: {names}")
    scores: list[list[list[float]]] = []
    work = [(f, it) for f in framings for it in items]
    flat = [
        _option_logprobs(model, f.render(it.question), it.options) for f, it in progress(work, "scoring", len(work))
    ]
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
