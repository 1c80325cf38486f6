"""``ioi_circuit``: the IOI circuit of a causal model, head class by head class, tested, beside GPT-2 small's.

What Wang et al. 2022 did by hand to GPT-2 small, done on any supported causal model:

1. build an IOI task with the ABC corruption (:func:`~circuitscope.tasks.ioi.ioi_task`) and measure
   the clean logit difference IO - S and the accuracy (IO's logit above S's);
2. if the model does the task (accuracy at least :data:`MIN_ACCURACY`), take every head's mean output
   over reference ABC prompts of each template (the means the evaluation ablates with);
3. find the seven head classes by path patching (:func:`~circuitscope.circuits.ioi.classify.find_head_classes`);
4. evaluate the circuit (faithfulness, completeness, minimality:
   :func:`~circuitscope.circuits.ioi.evaluate.evaluate_circuit`) and write its edges as a circuit file.

A model near chance still gets its classes searched (the scores show what its heads do), but no
circuit and no evaluation: they would be built on noise, and a warning says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float

from circuitscope.analysis.attribution import answer_logits
from circuitscope.circuits.ioi.classify import find_head_classes
from circuitscope.circuits.ioi.evaluate import circuit_of, evaluate_circuit, ioi_template_means
from circuitscope.circuits.ioi.reference import gpt2_small
from circuitscope.circuits.ioi.result import CircuitEvaluation, HeadClasses, IOICircuitResult, ThresholdRule
from circuitscope.core.fingerprint import model_fingerprint
from circuitscope.engine.batching import batch_slices
from circuitscope.progress import OnProgress
from circuitscope.tasks.ioi import IOIConfig, ioi_task
from circuitscope.tasks.metrics import evaluate_metric
from circuitscope.tasks.task import Task

if TYPE_CHECKING:
    from circuitscope.circuits.circuit import Circuit
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["MIN_ACCURACY", "IOICircuitConfig", "ioi_circuit"]

MIN_ACCURACY = 0.6
"""Below this clean accuracy the model is taken not to do IOI: no circuit is built on its heads."""


@dataclass(frozen=True)
class IOICircuitConfig:
    """How :func:`ioi_circuit` searches for and tests the IOI circuit (the defaults run in a few minutes on
    Gemma-3-270M on two CPU cores)."""

    n_prompts: int = 16
    """Clean IOI prompts (each with its ABC corruption) every path-patching step runs on."""
    seed: int = 0
    """Seed of the prompts, the reference ABC prompts and the random removal sets."""
    rule: ThresholdRule = field(default_factory=ThresholdRule)
    """When a head joins a class (``k_std`` standard deviations past the mean, at most ``max_heads``)."""
    n_reference: int = 4
    """ABC prompts per template the mean-ablation means are taken over (evaluation and step 5's knock-out)."""
    n_random: int = 4
    """Random removal sets of the circuit for the completeness test."""
    batch_size: int = 64
    """Rows of one forward pass (path patching: one prompt with one sender patched; evaluation: one prompt
    under one ablation set)."""

    def __post_init__(self) -> None:
        if not 2 <= self.n_prompts <= 1024:
            raise ValueError(f"n_prompts must be between 2 and 1024, got {self.n_prompts}; 16 is the default")
        if not isinstance(self.rule, ThresholdRule):
            raise ValueError(f"rule must be a ThresholdRule(k_std=..., max_heads=...), got {self.rule!r}")
        if not 1 <= self.n_reference <= 256:
            raise ValueError(f"n_reference must be between 1 and 256 ABC prompts per template, got {self.n_reference}")
        if not 0 <= self.n_random <= 1000:
            raise ValueError(f"n_random must be between 0 and 1000 random removal sets, got {self.n_random}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1 row per forward pass, got {self.batch_size}")


@torch.no_grad()
def _clean_logit_diffs(model: HookedModel, task: Task, batch_size: int) -> Float[torch.Tensor, " batch"]:
    """The logit difference IO - S of every clean prompt."""
    out = []
    for rows in batch_slices(len(task), batch_size):
        pos = task.answer_pos[rows]
        logits, _ = answer_logits(model, task.clean_tokens[rows, : int(pos.max()) + 1], pos)
        dev = logits.device
        out.append(evaluate_metric("logit_diff", logits, task.correct[rows].to(dev), task.incorrect[rows].to(dev)))
    return torch.cat(out).float().cpu()


def _circuit_and_evaluation(
    model: HookedModel,
    task: Task,
    classes: HeadClasses,
    config: IOICircuitConfig,
    name: str,
    warnings: list[str],
    on_progress: OnProgress | None,
) -> tuple[CircuitEvaluation | None, Circuit | None]:
    """The circuit the classes make and its evaluation (None, None with a warning when no class has a member)."""
    if not classes.all_heads:
        warnings.append(
            f"no class found a member under the threshold rule (k_std={config.rule.k_std}): no circuit to evaluate; "
            "a smaller k_std admits more heads"
        )
        return None, None
    evaluation = evaluate_circuit(
        model, task, classes, n_reference=config.n_reference, n_random=config.n_random, seed=config.seed,
        batch_size=config.batch_size, on_progress=on_progress,
    )  # fmt: skip
    return evaluation, circuit_of(model, classes, task, model_name=name)


def ioi_circuit(
    model: HookedModel,
    config: IOICircuitConfig | None = None,
    *,
    model_name: str | None = None,
    on_progress: OnProgress | None = None,
) -> IOICircuitResult:
    """The IOI circuit of ``model``: its head classes, the circuit, its evaluation, GPT-2 small's beside it.

    ``model_name`` names the model in the result and the circuit file (default: the model's family).
    ``on_progress(stage, done, total)`` is called as the work goes (None: a progress display per stage).
    """
    config = config or IOICircuitConfig()
    start = time.perf_counter()
    name = model_name or model.cfg.family
    task = ioi_task(model, IOIConfig(n_prompts=config.n_prompts, seed=config.seed, corruption="abc"))
    diffs = _clean_logit_diffs(model, task, config.batch_size)
    accuracy = float((diffs > 0).float().mean())
    warnings: list[str] = []
    does_ioi = accuracy >= MIN_ACCURACY
    means = None
    if does_ioi:
        means = ioi_template_means(
            model, task, config.n_reference, seed=config.seed, batch_size=config.batch_size, on_progress=on_progress
        )
    else:
        warnings.append(
            f"clean accuracy is {accuracy:.0%} on {len(task)} prompts (below {MIN_ACCURACY:.0%}): the model does not "
            "do IOI, so a circuit built on its heads would be built on noise; the classes below are searched, but "
            "no circuit is assembled or evaluated. Try a larger model, or more prompts."
        )
    classes = find_head_classes(
        model, task, rule=config.rule, batch_size=config.batch_size, means=means, on_progress=on_progress
    )
    evaluation, circuit = (
        _circuit_and_evaluation(model, task, classes, config, name, warnings, on_progress) if does_ioi else (None, None)
    )
    return IOICircuitResult(
        model_name=name,
        fingerprint=model_fingerprint(model),
        n_layers=model.cfg.n_layers,
        n_heads=model.cfg.n_heads,
        n_prompts=len(task),
        clean_logit_diff=float(diffs.mean()),
        clean_accuracy=accuracy,
        classes=classes,
        evaluation=evaluation,
        circuit=circuit,
        reference=gpt2_small(),
        warnings=warnings,
        seconds=time.perf_counter() - start,
    )
