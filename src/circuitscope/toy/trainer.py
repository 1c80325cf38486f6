"""A small, seeded, resumable trainer with metric callbacks on checkpoints.

``train(model, loss_fn, batches, config, out=folder, metrics={...})`` runs AdamW with linear
warm-up for ``config.steps`` steps. The batch of step ``s`` is ``batches(s)``: a pure function
of the step (see :func:`full_batch`, :func:`shuffled_batches`, :func:`seeded_batches`), so a
run resumed from a checkpoint sees exactly the batches the uninterrupted run would have seen
and ends with the same weights, bit for bit.

At step 0, every ``checkpoint_every`` steps and at the last step, every metric callback runs on
the model (in eval mode, without gradients) and its value is appended to a curve: any
circuitscope measurement (a head score, a held-out loss) becomes a curve over training. With
``out``, the weights, AdamW state and curves are saved there (see :mod:`circuitscope.toy.checkpoint`)
and an existing folder of the same run is resumed from its latest checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from circuitscope.progress import OnProgress
from circuitscope.toy.checkpoint import check_run_folder, resume_checkpoint, save_checkpoint
from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.threads import torch_threads

__all__ = [
    "Batch",
    "BatchFn",
    "MetricFn",
    "TrainConfig",
    "TrainResult",
    "full_batch",
    "seeded_batches",
    "shuffled_batches",
    "train",
]

Batch = tuple[torch.Tensor, ...]
BatchFn = Callable[[int], Batch]
LossFn = Callable[[torch.nn.Module, Batch], torch.Tensor]
MetricFn = Callable[[torch.nn.Module], float | torch.Tensor]
"""A measurement of the model: a number, or a tensor (stored as nested lists)."""


@dataclass(frozen=True)
class TrainConfig:
    """How to train: AdamW with linear warm-up, seeded."""

    steps: int
    """Number of optimiser steps."""
    lr: float = 1e-3
    """Peak learning rate (reached after ``warmup_steps``)."""
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW's moment coefficients."""
    warmup_steps: int = 0
    """Linear warm-up from lr/warmup_steps to lr over this many steps."""
    checkpoint_every: int = 100
    """Run the metric callbacks (and save, with ``out``) every this many steps, at step 0 and at the end."""
    grad_clip: float | None = None
    """Clip the global gradient norm to this value (None: no clipping)."""
    seed: int = 0
    """Seeds the batches (through the batch function) and anything random in the loss."""
    threads: int | None = None
    """torch CPU threads during training (restored afterwards); on a busy machine 1 is often fastest."""

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise LabConfigError(f"steps must be at least 1, got {self.steps}")
        if not self.lr > 0:
            raise LabConfigError(f"lr must be positive, got {self.lr}")
        if self.weight_decay < 0 or self.warmup_steps < 0:
            raise LabConfigError("weight_decay and warmup_steps must not be negative")
        if not all(0 <= b < 1 for b in self.betas):
            raise LabConfigError(f"betas must lie in [0, 1), got {self.betas}")
        if self.checkpoint_every < 1:
            raise LabConfigError(f"checkpoint_every must be at least 1, got {self.checkpoint_every}")
        if self.threads is not None and self.threads < 1:
            raise LabConfigError(f"threads must be at least 1, got {self.threads}")

    @classmethod
    def of(cls, experiment: object, **overrides: Any) -> TrainConfig:
        """The training configuration of a lab's experiment: its fields named like this class's (``steps``, ``lr``,
        ``seed``, ...); fields it lacks keep their defaults, and ``overrides`` (e.g. ``threads``) win."""
        taken = {f.name: getattr(experiment, f.name) for f in fields(cls) if hasattr(experiment, f.name)}
        return cls(**{**taken, **overrides})

    def lr_at(self, step: int) -> float:
        """Learning rate used for the update of ``step`` (0-based)."""
        if self.warmup_steps == 0:
            return self.lr
        return self.lr * min(1.0, (step + 1) / self.warmup_steps)

    def identity(self) -> dict[str, Any]:
        """What defines the run (``steps`` may be extended and ``threads`` changes speed only: both left out)."""
        out = asdict(self)
        del out["threads"], out["steps"]
        return out


@dataclass
class TrainResult:
    """Losses and metric curves of one training run."""

    config: TrainConfig
    """The training configuration."""
    loss: list[float]
    """Training loss of every step (the batch loss before that step's update)."""
    metric_steps: list[int]
    """Steps at which the metrics were measured (after that many updates)."""
    metrics: dict[str, list[Any]] = field(default_factory=dict)
    """Metric name -> one value per entry of ``metric_steps`` (numbers, or nested lists for tensors)."""
    resumed_from: int | None = None
    """The checkpoint step this run continued from, if it resumed."""

    def curve(self, name: str) -> torch.Tensor:
        """A metric's values as a tensor [n_checkpoints, ...] (non-finite numbers were stored as None)."""
        if name not in self.metrics:
            raise KeyError(f"no metric {name!r}; measured: {sorted(self.metrics)}")
        return torch.tensor(self.metrics[name])


def full_batch(*tensors: torch.Tensor) -> BatchFn:
    """Every step sees the whole data set."""
    batch = tuple(tensors)
    return lambda _step: batch


def shuffled_batches(*tensors: torch.Tensor, batch_size: int, seed: int) -> BatchFn:
    """Mini-batches from a fixed data set, reshuffled every epoch; a pure function of the step."""
    n = tensors[0].shape[0]
    if any(t.shape[0] != n for t in tensors):
        raise LabConfigError("all tensors of a data set need the same first dimension")
    if not 0 < batch_size <= n:
        raise LabConfigError(f"batch_size must lie in [1, {n}], got {batch_size}")
    per_epoch = n // batch_size

    def batch(step: int) -> Batch:
        epoch, i = divmod(step, per_epoch)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        idx = order[i * batch_size : (i + 1) * batch_size]
        return tuple(t[idx] for t in tensors)

    return batch


def seeded_batches(make: Callable[[torch.Generator], Batch], seed: int) -> BatchFn:
    """Freshly generated batches: ``make`` draws from a generator seeded by (seed, step)."""
    return lambda step: make(torch.Generator().manual_seed(seed * 1_000_003 + step))


def _value(x: float | torch.Tensor) -> Any:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.ndim:
            return x.tolist()
    value = float(x)
    return value if math.isfinite(value) else None  # JSON has no NaN: "not measured" is null


def _measure(model: torch.nn.Module, metrics: Mapping[str, MetricFn]) -> dict[str, Any]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return {name: _value(fn(model)) for name, fn in metrics.items()}
    finally:
        model.train(was_training)


def _resume(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    result: TrainResult,
    identity: Mapping[str, Any] | None,
) -> int:
    """Check that ``folder`` holds this run (or none), restore its latest checkpoint into ``model``, ``optimizer``
    and ``result``, and return the step to continue from (0 for a new run)."""
    config, metrics = result.config, result.metrics
    model_config: Any = getattr(model, "config", None)
    if not hasattr(model_config, "to_diff_dict"):
        model_config = None
    run_id = {
        "model": model_config.to_diff_dict() if model_config is not None else type(model).__name__,
        "train": config.identity(),
        "task": dict(identity or {}),
        "metrics": sorted(metrics),
    }
    check_run_folder(folder, run_id)
    state = resume_checkpoint(folder, model, optimizer, config.steps)  # skips damaged checkpoints
    if state is None:
        return 0
    start = int(state["step"])
    result.loss = list(state["loss"])
    result.metric_steps = list(state["metric_steps"])
    result.metrics = {k: list(state["metrics"].get(k, [])) for k in metrics}
    result.resumed_from = start
    return start


def _update(
    model: torch.nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    step: int,
) -> float:
    """One optimiser step at ``step``'s learning rate; returns the batch loss before the update."""
    for group in optimizer.param_groups:
        group["lr"] = config.lr_at(step)
    loss = loss_fn(model, batch)
    value = float(loss.detach())
    if not math.isfinite(value):
        raise FloatingPointError(f"the training loss became {value} at step {step}; lower the lr")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    return value


def train(
    model: torch.nn.Module,
    loss_fn: LossFn,
    batches: BatchFn,
    config: TrainConfig,
    *,
    out: str | Path | None = None,
    metrics: Mapping[str, MetricFn] | None = None,
    identity: Mapping[str, Any] | None = None,
    description: str = "training",
    on_progress: OnProgress | None = None,
) -> TrainResult:
    """Train ``model`` in place; see the module docstring. ``identity`` describes the task for ``out``.

    ``on_progress(description, steps_done, config.steps)`` is called before the first step and
    after every step (a resumed run starts at its checkpoint's step).
    """
    metrics = dict(metrics or {})
    folder = Path(out) if out is not None else None
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay, fused=True
    )
    result = TrainResult(config=config, loss=[], metric_steps=[], metrics={k: [] for k in metrics})
    start = 0
    if folder is not None:
        start = _resume(folder, model, optimizer, result, identity)

    def checkpoint(step: int) -> None:
        result.metric_steps.append(step)
        for name, value in _measure(model, metrics).items():
            result.metrics[name].append(value)
        if folder is not None:
            state = {"loss": result.loss, "metric_steps": result.metric_steps, "metrics": result.metrics}
            save_checkpoint(folder, step, model, optimizer, state)

    with torch_threads(config.threads or torch.get_num_threads()):
        try:
            model.train()
            if start == 0 and not result.metric_steps:
                checkpoint(0)
            if on_progress is not None:
                on_progress(description, start, config.steps)
            for step in range(start, config.steps):
                result.loss.append(_update(model, loss_fn, batches(step), optimizer, config, step))
                done_steps = step + 1
                if done_steps % config.checkpoint_every == 0 or done_steps == config.steps:
                    checkpoint(done_steps)
                if on_progress is not None:
                    on_progress(description, done_steps, config.steps)
        finally:
            model.eval()
    return result
