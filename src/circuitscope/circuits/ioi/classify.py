"""The IOI head classes, found step by step with path patching (Wang et al. 2022, section 3).

Every step path-patches each sender head with its ABC-corrupted output into chosen receivers
(:func:`~circuitscope.analysis._path_patching.path_patching`); a head's score is the fraction of the
clean-to-corrupted change of the logit difference that its path carries. The
:class:`~circuitscope.circuits.ioi.result.ThresholdRule` picks each class's members. Top down:

1. **name movers** / **negative name movers**: path patching into the logits; the heads with the
   largest positive / negative direct effect.
2. **S-inhibition** heads: into the name movers' queries, at END.
3. **induction** and **duplicate-token** heads: into the S-inhibition heads' keys and values at S2; a
   member is an induction head if its attention S2->S1+1 plus its induction score beats its attention
   S2->S1 plus its duplicate-token score, a duplicate-token head otherwise.
4. **previous-token** heads: into the induction heads' keys, at S1+1.
5. **backup name movers**: the name movers knocked out (their outputs replaced, in every run, by their
   mean over ABC prompts of the same template, per position: the given
   :class:`~circuitscope.circuits.ioi.ablation.TemplateMeans`, or else the task's own corrupted prompts),
   path patching into the logits again; the heads whose direct effect (clean minus patched logit
   difference) grows the most.

A head joins at most one class, the first step that selects it. A step whose receivers are missing
(no name movers, so no S-inhibition heads can be searched) leaves its classes empty with a note.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from torch import Tensor

from circuitscope.analysis import PathPatchingResult, ReceiverInput, path_patching
from circuitscope.circuits.ioi.ablation import HeadMeanAblation, TemplateMeans, task_template_means, template_groups
from circuitscope.circuits.ioi.evidence import detector_table, name_copy_scores, role_attention
from circuitscope.circuits.ioi.positions import IOIPositions, ioi_positions
from circuitscope.circuits.ioi.result import (
    ClassFinding,
    Direction,
    HeadClass,
    HeadClasses,
    HeadEvidence,
    ThresholdRule,
)
from circuitscope.core.capabilities import require_attention
from circuitscope.engine.grid import ScoreGrid, component_labels
from circuitscope.progress import SILENT, OnProgress
from circuitscope.tasks.task import Task, TaskError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["find_head_classes"]

Heads = list[tuple[int, int]]
_NAME_MOVER_ATTENTION = ("END->IO", "END->S1", "END->S2")


def _names(heads: Sequence[tuple[int, int]]) -> str:
    return ", ".join(f"L{layer}H{head}" for layer, head in heads)


@dataclass
class _Search:
    """What every step shares: the model, the task, the role positions, the rule and the evidence tables."""

    model: HookedModel
    task: Task
    positions: IOIPositions
    rule: ThresholdRule
    batch_size: int
    on_progress: OnProgress | None
    attention: dict[str, Float[Tensor, "layer head"]]
    detectors: dict[str, Float[Tensor, "layer head"]]
    taken: set[tuple[int, int]] = dataclasses.field(default_factory=set)

    def patch(
        self, step: str, receivers: Heads | str, inputs: Sequence[ReceiverInput] = ("q",), at: Tensor | None = None
    ) -> PathPatchingResult:
        report = self.on_progress

        def forward(stage: str, done: int, total: int) -> None:
            if report is not None:
                report(f"{step}: {stage}", done, total)

        return path_patching(
            self.model,
            self.task,
            receivers,  # type: ignore[arg-type]
            inputs=inputs,
            metric="logit_diff",
            positions=at,
            batch_size=self.batch_size,
            on_progress=forward if report is not None else None,
        )

    def evidence(
        self,
        heads: Heads,
        scores: Tensor,
        keys: Sequence[str],
        copy: dict[tuple[int, int], float] | None = None,
    ) -> list[HeadEvidence]:
        return [
            HeadEvidence(
                layer=layer,
                head=head,
                score=float(scores[layer, head]),
                attention={key: float(self.attention[key][layer, head]) for key in keys},
                copy_score=None if copy is None else copy[(layer, head)],
                detectors={name: float(table[layer, head]) for name, table in self.detectors.items()},
            )
            for layer, head in heads
        ]

    def finding(
        self,
        name: HeadClass,
        method: str,
        grid: ScoreGrid,
        direction: Direction,
        members: Heads,
        keys: Sequence[str],
        copy: dict[tuple[int, int], float] | None = None,
        cut: float | None = None,
    ) -> ClassFinding:
        self.taken.update(members)
        return ClassFinding(
            name=name,
            method=method,
            scores=grid,
            direction=direction,
            cut=self.rule.cut(grid.scores, direction) if cut is None else cut,
            members=self.evidence(members, grid.scores, keys, copy),
            note="" if members else f"no head passed the cut of the threshold rule (k_std={self.rule.k_std})",
        )

    def empty(self, name: HeadClass, method: str, note: str) -> ClassFinding:
        """A class not searched: NaN scores and cut, no members, ``note`` saying why."""
        cfg = self.model.cfg
        grid = ScoreGrid(
            scores=torch.full((cfg.n_layers, cfg.n_heads), float("nan")),
            axes=("layer", "head"),
            labels=component_labels(self.model, ("layer", "head")),
            metric="logit_diff",
            clean_value=None,
            corrupted_value=None,
        )
        return ClassFinding(name, method, grid, "positive", float("nan"), [], note)


def _name_movers(search: _Search) -> tuple[ClassFinding, ClassFinding, PathPatchingResult]:
    """Step 1: path patching into the logits; the positive and the negative name movers."""
    direct = search.patch("name movers", "logits")
    names = torch.cat([search.task.correct, search.task.incorrect])
    positive = search.rule.select(direct.scores, "positive", frozenset(search.taken))
    negative = search.rule.select(direct.scores, "negative", frozenset(search.taken) | frozenset(positive))
    copy = name_copy_scores(search.model, positive + negative, names)
    method = "path patching to the logits (ABC)"
    movers = search.finding(
        "name_mover", method, direct, "positive", positive, _NAME_MOVER_ATTENTION, {h: copy[h][0] for h in positive}
    )
    negatives = search.finding(
        "negative_name_mover",
        method,
        direct,
        "negative",
        negative,
        _NAME_MOVER_ATTENTION,
        {h: copy[h][1] for h in negative},
    )
    return movers, negatives, direct


def _s_inhibition(search: _Search, movers: Heads) -> ClassFinding:
    """Step 2: path patching into the name movers' queries at END."""
    method = f"path patching to the queries of {_names(movers)} at END (ABC)"
    if not movers:
        return search.empty("s_inhibition", "path patching to the name movers' queries at END", "no name movers found")
    grid = search.patch("S-inhibition", movers, ("q",), search.positions.end)
    members = search.rule.select(grid.scores, "positive", frozenset(search.taken))
    return search.finding("s_inhibition", method, grid, "positive", members, ("END->S2", "END->S1", "END->IO"))


def _induction_and_duplicate(search: _Search, inhibitors: Heads) -> tuple[ClassFinding, ClassFinding]:
    """Step 3: path patching into the S-inhibition heads' keys and values at S2, split by attention and detectors."""
    if not inhibitors:
        method, note = "path patching to the S-inhibition heads' keys and values at S2", "no S-inhibition heads found"
        return search.empty("induction", method, note), search.empty("duplicate_token", method, note)
    grid = search.patch("induction/duplicate", inhibitors, ("k", "v"), search.positions.s2)
    wide = dataclasses.replace(search.rule, max_heads=64)  # every head past the cut; each class takes max_heads
    passed = wide.select(grid.scores, "positive", frozenset(search.taken))
    att, det = search.attention, search.detectors

    def induction_like(layer: int, head: int) -> bool:
        induction = att["S2->S1+1"][layer, head] + det["induction"][layer, head]
        return bool(induction > att["S2->S1"][layer, head] + det["duplicate_token"][layer, head])

    induction = [h for h in passed if induction_like(*h)][: search.rule.max_heads]
    duplicate = [h for h in passed if not induction_like(*h)][: search.rule.max_heads]
    method = f"path patching to the keys and values of {_names(inhibitors)} at S2 (ABC)"
    rule = "S2->S1+1 attention plus induction score {} S2->S1 attention plus duplicate-token score"
    keys = ("S2->S1+1", "S2->S1")
    return (
        search.finding("induction", f"{method}; {rule.format('above')}", grid, "positive", induction, keys),
        search.finding("duplicate_token", f"{method}; {rule.format('at most')}", grid, "positive", duplicate, keys),
    )


def _previous_token(search: _Search, induction: Heads) -> ClassFinding:
    """Step 4: path patching into the induction heads' keys at S1+1."""
    if not induction:
        return search.empty(
            "previous_token", "path patching to the induction heads' keys at S1+1", "no induction heads found"
        )
    grid = search.patch("previous token", induction, ("k",), search.positions.s1_plus_1)
    members = search.rule.select(grid.scores, "positive", frozenset(search.taken))
    method = f"path patching to the keys of {_names(induction)} at S1+1 (ABC)"
    return search.finding("previous_token", method, grid, "positive", members, ("S1+1->S1",))


def _mover_ablation(model: HookedModel, task: Task, movers: Heads, means: TemplateMeans | None) -> HeadMeanAblation:
    """The name movers of every prompt fixed at their ABC mean for the prompt's template: ``means`` looked up by
    ``labels["template"]``, or else the task's own (:func:`~circuitscope.circuits.ioi.ablation.task_template_means`)."""
    if means is None:
        # one forward pass over the task, as many rows as the task has (it is already held in memory)
        means, groups = (
            task_template_means(model, task, batch_size=len(task), on_progress=SILENT),
            template_groups(task),
        )
    else:
        groups = task.labels.get("template") or []
        if len(groups) != len(task):
            raise TaskError(
                f"task {task.name!r} has no per-prompt 'template' labels to look its ABC means up by; build it with "
                "circuitscope.tasks.ioi_task, or leave means out (the task's own corrupted prompts give them)"
            )
    rows = torch.tensor([means.index(g) for g in groups], dtype=torch.long)
    ablated = torch.zeros(len(task), model.cfg.n_layers, model.cfg.n_heads, dtype=torch.bool)
    for layer, head in movers:
        ablated[:, layer, head] = True
    return HeadMeanAblation(means, rows, ablated)


def _backup(search: _Search, movers: Heads, direct: PathPatchingResult, means: TemplateMeans | None) -> ClassFinding:
    """Step 5: the growth of every head's direct effect once the name movers are knocked out (ABC means)."""
    if not movers:
        return search.empty(
            "backup_name_mover", "growth of the direct effect with the name movers knocked out", "no name movers found"
        )
    task = search.task
    with search.model.apply(_mover_ablation(search.model, task, movers, means)):
        knocked = search.patch("backup name movers", "logits")
    growth = (knocked.clean_value - knocked.raw) - (direct.clean_value - direct.raw)
    grid = ScoreGrid(
        scores=growth,
        axes=("layer", "head"),
        labels=direct.labels,
        metric="logit_diff",
        clean_value=knocked.clean_value,
        corrupted_value=knocked.corrupted_value,
    )
    members = search.rule.select(growth, "positive", frozenset(search.taken) | frozenset(movers))
    names = torch.cat([search.task.correct, search.task.incorrect])
    copy = {h: c for h, (c, _) in name_copy_scores(search.model, members, names).items()}
    method = (
        f"growth of the direct effect on the logit difference (path patching to the logits, ABC) with "
        f"{_names(movers)} knocked out (their mean over {'the task' if means is None else 'reference'} "
        "ABC prompts of each template)"
    )
    return search.finding("backup_name_mover", method, grid, "positive", members, _NAME_MOVER_ATTENTION, copy)


# Same shape as src/circuitscope/sae/frequency.py:store_frequencies on purpose: keyword options one per line
# (batch size, progress) is how entry points take their arguments; nothing to share.
@torch.no_grad()
def find_head_classes(
    model: HookedModel,
    task: Task,
    *,
    rule: ThresholdRule | None = None,
    batch_size: int = 256,
    means: TemplateMeans | None = None,
    on_progress: OnProgress | None = None,
) -> HeadClasses:
    """The seven IOI head classes of ``model`` on the IOI ``task`` (ABC corruption), steps 1-5 of the module.

    ``batch_size`` bounds the rows of one forward pass of path patching (a row: one prompt, one sender patched).
    ``means``: the ABC means that knock out the name movers in step 5 (e.g. from
    :func:`~circuitscope.circuits.ioi.evaluate.ioi_template_means`, the ones the evaluation ablates with);
    None takes them over the task's own corrupted prompts of each template.
    ``on_progress(stage, done, total)`` is called after each pass (None: a progress display per step).
    """
    require_attention(model.cfg, "the IOI head classes")
    rule = rule or ThresholdRule()
    positions = ioi_positions(model, task)
    search = _Search(
        model=model,
        task=task,
        positions=positions,
        rule=rule,
        batch_size=batch_size,
        on_progress=on_progress,
        attention=role_attention(model, task.clean_tokens, positions),
        detectors=detector_table(model),
    )
    movers, negatives, direct = _name_movers(search)
    inhibition = _s_inhibition(search, movers.heads)
    induction, duplicate = _induction_and_duplicate(search, inhibition.heads)
    previous = _previous_token(search, induction.heads)
    backup = _backup(search, movers.heads, direct, means)
    found = (movers, negatives, inhibition, induction, duplicate, previous, backup)
    return HeadClasses(rule=rule, classes={f.name: f for f in found})
