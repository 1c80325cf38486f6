"""``circuitscope lab icl``: transformers learn in context by gradient descent (von Oswald et al. 2023).

Linear self-attention models of each depth in ``config.lsa_layers`` and a softmax-attention
transformer are trained on fresh in-context linear regression tasks every step (the trainer of
:mod:`circuitscope.toy.trainer`: checkpoints that resume bit for bit). At every checkpoint the
held-out loss and the cosine between the model's predictions and those of gradient descent are
measured (k steps for a k-layer linear model, one step for the softmax model); after training,
:func:`~circuitscope.toy.icl.compare.compare_with_gd` (predictions and sensitivities), the weights
against the GD construction, and the loss against the number of context pairs, past the trained one.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from circuitscope.progress import OnProgress
from circuitscope.toy.icl.compare import (
    GDComparison,
    LengthCurve,
    compare_with_gd,
    construction_fit,
    least_squares_curve,
    length_curve,
    length_tasks,
)
from circuitscope.toy.icl.config import ICLConfig
from circuitscope.toy.icl.models import LinearSelfAttention, SoftmaxRegressor
from circuitscope.toy.icl.tasks import RegressionTasks, best_gd_lr, gd_predictions, sample_tasks
from circuitscope.toy.threads import fastest_thread_count
from circuitscope.toy.trainer import Batch, TrainConfig, TrainResult, seeded_batches, train

__all__ = ["MATCH_COSINE", "ICLModelRun", "ICLResult", "build_icl_model", "run_icl", "train_icl_model"]

MATCH_COSINE = 0.99
"""The prediction cosine to GD above which a model counts as matching it (the lab's target for 1 layer)."""

ModelKind = Literal["linear", "softmax"]


@dataclass(frozen=True)
class ICLModelRun:
    """One trained model: its curves over training and its comparison with gradient descent."""

    name: str
    """``lsa_L1``, ``lsa_L2``, ..., ``softmax_L2``."""
    kind: ModelKind
    """Linear self-attention or softmax attention."""
    n_layers: int
    """Depth."""
    threads: int
    """torch threads it trained on (given, or measured fastest)."""
    steps: list[int]
    """Checkpoint steps of the curves below."""
    train_loss: list[float]
    """Training loss of every step."""
    test_loss: list[float]
    """Held-out query MSE at each checkpoint."""
    gd_cosine: list[float]
    """Cosine between its predictions and GD's at each checkpoint."""
    seconds: list[float]
    """Wall-clock seconds of training (this process) at each checkpoint."""
    comparison: GDComparison
    """The final model against GD."""
    by_length: LengthCurve
    """Loss and cosine to GD against the number of context pairs."""
    W_KQ: list[Any] | None = None
    """Linear models: the merged key-query matrices [layer][head][d+1][d+1]."""
    W_PV: list[Any] | None = None
    """Linear models: the merged value-output matrices [layer][head][d+1][d+1]."""
    construction_cosine: list[float] | None = None
    """Linear models, per layer: cosine of the query readout to the GD construction's (see ``construction_fit``)."""
    construction_lr: list[float] | None = None
    """Linear models, per layer: the learning rate of the closest GD construction."""

    @property
    def matched_at(self) -> tuple[int, float] | None:
        """The first checkpoint (step, seconds) whose prediction cosine to GD reached :data:`MATCH_COSINE`."""
        for step, cosine, seconds in zip(self.steps, self.gd_cosine, self.seconds, strict=True):
            if cosine is not None and cosine >= MATCH_COSINE:
                return step, seconds
        return None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        matched = self.matched_at
        out["matched_step"], out["matched_seconds"] = matched if matched is not None else (None, None)
        return out


@dataclass(frozen=True)
class ICLResult:
    """Every model of the lab, the GD learning rates and the least-squares floor."""

    config: ICLConfig
    """The lab's configuration."""
    gd_lr: dict[int, float]
    """Steps of GD -> the best learning rate (line search on training tasks)."""
    lengths: list[int]
    """Context lengths of the length curves."""
    least_squares_loss: list[float]
    """The posterior-mean learner's query MSE at each length."""
    one_step_gd_loss: list[float]
    """One GD step's query MSE at each length."""
    models: list[ICLModelRun]
    """The trained models, linear ones first."""

    def model(self, name: str) -> ICLModelRun:
        """The run called ``name`` (``lsa_L1``, ``softmax_L2``, ...)."""
        for run in self.models:
            if run.name == name:
                return run
        raise KeyError(f"no model {name!r}; trained: {[run.name for run in self.models]}")

    def to_json(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "gd_lr": {str(k): v for k, v in self.gd_lr.items()},
            "lengths": self.lengths,
            "least_squares_loss": self.least_squares_loss,
            "one_step_gd_loss": self.one_step_gd_loss,
            "models": {run.name: run.to_json() for run in self.models},
        }


def build_icl_model(config: ICLConfig, kind: ModelKind, n_layers: int) -> nn.Module:
    """A freshly initialised model, seeded by ``config.seed`` and its depth."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed * 1009 + n_layers + (500 if kind == "softmax" else 0))
        if kind == "linear":
            return LinearSelfAttention(config.d, n_layers, config.lsa_heads)
        return SoftmaxRegressor(config.d, n_layers, config.softmax_d_model, config.softmax_heads)


def _mse(model: nn.Module, batch: Batch) -> torch.Tensor:
    return (model(batch[0]) - batch[1]).pow(2).mean()


def _forward_backward(model: nn.Module, batch: Batch) -> None:
    """One training pass that leaves no trace (the gradients are cleared): the work the thread count is timed on."""
    _mse(model, batch).backward()
    model.zero_grad(set_to_none=True)


def train_icl_model(
    config: ICLConfig,
    kind: ModelKind,
    n_layers: int,
    test: RegressionTasks,
    gd_lr: float,
    gd_steps: int,
    out: str | Path | None = None,
    threads: int | None = None,
    on_progress: OnProgress | None = None,
) -> tuple[nn.Module, TrainResult]:
    """Train one model on fresh tasks every step (resuming from ``out``), measuring ``test`` at every checkpoint."""
    model = build_icl_model(config, kind, n_layers)
    start = time.perf_counter()
    gd = gd_predictions(test.tokens, gd_lr, gd_steps)
    memo: dict[str, float] = {}

    def test_loss(m: nn.Module) -> float:
        pred = m(test.tokens)
        memo["cosine"] = float(torch.nn.functional.cosine_similarity(pred, gd, dim=0))
        return float((pred - test.targets).pow(2).mean())

    linear = kind == "linear"
    batch_size = config.batch_size if linear else config.softmax_batch_size

    def make(generator: torch.Generator) -> Batch:
        tasks = sample_tasks(generator, batch_size, config.n_context, config.d, config.noise)
        return tasks.tokens, tasks.targets

    batches = seeded_batches(make, config.seed)
    if threads is None:  # one forward and backward pass of a training batch, timed on 1 and 2 threads
        threads = fastest_thread_count(partial(_forward_backward, model, batches(0)))
    train_config = TrainConfig(
        steps=config.lsa_steps if linear else config.softmax_steps,
        lr=config.lsa_lr if linear else config.softmax_lr,
        checkpoint_every=config.checkpoint_every,
        seed=config.seed,
        threads=threads,
    )
    identity = {
        "task": "icl",
        "model": kind,
        "n_layers": n_layers,
        "heads": config.lsa_heads if linear else config.softmax_heads,
        "d_model": None if linear else config.softmax_d_model,
        "data": {"d": config.d, "n_context": config.n_context, "noise": config.noise, "batch": batch_size},
    }
    result = train(
        model,
        _mse,
        batches,
        train_config,
        out=out,
        metrics={
            "test_loss": test_loss,
            "gd_cosine": lambda _m: memo["cosine"],
            "seconds": lambda _m: time.perf_counter() - start,
        },
        identity=identity,
        description=f"{kind} {n_layers}-layer",
        on_progress=on_progress,
    )
    return model, result


def _run_of(
    model: nn.Module, kind: ModelKind, n_layers: int, trained: TrainResult, comparison: GDComparison, curve: LengthCurve
) -> ICLModelRun:
    m = trained.metrics
    weights: dict[str, Any] = {}
    if isinstance(model, LinearSelfAttention):
        W_KQ, W_PV = model.merged_weights()
        cosines, rates = construction_fit(model)
        weights = {
            "W_KQ": W_KQ.tolist(),
            "W_PV": W_PV.tolist(),
            "construction_cosine": cosines,
            "construction_lr": rates,
        }
    return ICLModelRun(
        name=f"{'lsa' if kind == 'linear' else 'softmax'}_L{n_layers}",
        kind=kind,
        n_layers=n_layers,
        threads=trained.config.threads or 1,
        steps=trained.metric_steps,
        train_loss=trained.loss,
        test_loss=m["test_loss"],
        gd_cosine=m["gd_cosine"],
        seconds=m["seconds"],
        comparison=comparison,
        by_length=curve,
        **weights,
    )


def run_icl(
    config: ICLConfig, out: str | Path | None = None, threads: int | None = None, on_progress: OnProgress | None = None
) -> ICLResult:
    """Train every model of ``config`` (checkpoints under ``out/<name>``, resumed when present) and compare them
    with gradient descent. ``on_progress(stage, done, total)`` is told each model's training steps."""
    line_search = sample_tasks(
        torch.Generator().manual_seed(20_000 + config.seed), config.eval_tasks, config.n_context, config.d, config.noise
    )
    test = sample_tasks(
        torch.Generator().manual_seed(10_000 + config.seed), config.eval_tasks, config.n_context, config.d, config.noise
    )
    gd_steps_needed = sorted({1, *config.lsa_layers})
    gd_lr = {k: best_gd_lr(line_search, k) for k in gd_steps_needed}
    lengths = list(range(1, config.max_eval_context + 1))
    by_length = length_tasks(config.seed, lengths, max(config.eval_tasks // 4, 1), config.d, config.noise)
    plan: list[tuple[ModelKind, int, int]] = [("linear", n, n) for n in config.lsa_layers]
    if config.softmax_layers:
        plan.append(("softmax", config.softmax_layers, 1))
    runs = []
    for kind, n_layers, steps in plan:
        folder = Path(out) / f"{'lsa' if kind == 'linear' else 'softmax'}_L{n_layers}" if out is not None else None
        model, trained = train_icl_model(
            config, kind, n_layers, test, gd_lr[steps], steps, folder, threads, on_progress
        )
        comparison = compare_with_gd(model, test, gd_lr[steps], steps)
        runs.append(
            _run_of(model, kind, n_layers, trained, comparison, length_curve(model, by_length, gd_lr[steps], steps))
        )
    one_step = [float((gd_predictions(b.tokens, gd_lr[1]) - b.targets).pow(2).mean()) for b in by_length]
    return ICLResult(
        config=config,
        gd_lr=gd_lr,
        lengths=lengths,
        least_squares_loss=least_squares_curve(by_length, config.noise),
        one_step_gd_loss=one_step,
        models=runs,
    )
