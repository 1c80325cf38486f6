"""Training an SAE on an activation store: Adam(W), warm-up and decay, sparsity warm-up, dead latents, checkpoints, DDP.

A run is a pure function of the store, the :class:`TrainConfig` and its seed: the batch at
step ``i`` is batch ``i`` of the store's seeded stream, the learning rate and sparsity
coefficient are functions of the step, and a checkpoint holds everything else (weights,
Adam's moments, dead-latent counters, the input scale). So a run interrupted and resumed
from a checkpoint ends with the same weights as an uninterrupted one.

Under ``torchrun`` (``WORLD_SIZE > 1``) training is data-parallel with PyTorch DDP (gloo on
CPU, NCCL on CUDA): every process reads the same global batch and trains on its share of
the rows; gradients are averaged, so the result equals single-process training on the same
data to floating-point tolerance (BatchTopK selects its top ``k·B`` per process).

This is not :mod:`circuitscope.toy.trainer` on purpose: the toy trainer's job is a curve of
measurements over a small model's training (metric callbacks at checkpoints, a run identity),
this one's is one SAE over a stream of stored activations (data-parallel, dead-latent counters,
decoder renormalisation, an input scale, the SAELens file at the end). The two share the file
mechanics (:mod:`circuitscope.core.files`), not the loop.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from circuitscope.engine.distributed import World, check_same_arguments, process_group
from circuitscope.progress import OnProgress
from circuitscope.sae.base import ARCHITECTURES, SAE, SAEConfig, StepContext, TrainOutput, create_sae
from circuitscope.sae.checkpoint import resume_checkpoint, save_checkpoint
from circuitscope.sae.errors import SAEConfigError
from circuitscope.sae.io import save_sae
from circuitscope.sae.store import ActivationStore
from circuitscope.sae.train_config import TrainConfig

__all__ = ["OnLog", "TrainConfig", "TrainResult", "geometric_median", "train_sae"]

OnLog = Callable[[dict[str, float]], None]
"""``on_log(metrics)``: a metrics logger, not progress. Called (on rank 0) every ``log_every`` steps and at the
last step with that step's logged values (``step``, ``loss``, ``mse``, ``l0``, ``explained_variance``, ...),
the entry :attr:`TrainResult.history` keeps. Progress goes to ``on_progress``."""


@dataclass(frozen=True)
class TrainResult:
    """A finished (or resumed-and-finished) run."""

    sae: SAE
    """The trained SAE (input scale folded in: it reads raw activations)."""
    steps: int
    """Optimiser steps taken in total."""
    history: list[dict[str, float]]
    """Logged metrics: step, loss, mse, l0, explained_variance, dead_fraction, lr, seconds."""
    activations_per_second: float
    """Training throughput of this call (all processes together)."""
    folder: Path | None
    """Where the SAE and its checkpoints were written."""


def geometric_median(points: torch.Tensor, iterations: int = 50, eps: float = 1e-6) -> torch.Tensor:
    """Weiszfeld's algorithm: the point minimising the sum of Euclidean distances to ``points`` [n, d]."""
    x = points.double()
    median = x.mean(0)
    for _ in range(iterations):
        w = 1.0 / (x - median).norm(dim=-1).clamp_min(eps)
        new = (w[:, None] * x).sum(0) / w.sum()
        if (new - median).norm() < eps * (1 + median.norm()):
            median = new
            break
        median = new
    return median.float()


class _Step(nn.Module):
    """Wraps the architecture's training forward so DDP can hook its parameters."""

    def __init__(self, sae: SAE) -> None:
        super().__init__()
        self.sae = sae

    def forward(self, x: torch.Tensor, ctx: StepContext) -> TrainOutput:
        return self.sae.training_forward(x, ctx)


class _Bar:
    """A rich progress bar with the current loss, L0 and explained variance (quiet when not a terminal).

    ``on_progress("training SAE", step, total)`` is also told every step, bar or not.
    """

    def __init__(self, total: int, start: int, enabled: bool, on_progress: OnProgress | None = None) -> None:
        self.total, self.on_progress = total, on_progress
        if on_progress is not None:
            on_progress("training SAE", start, total)
        self.enabled = enabled and os.environ.get("CIRCUITSCOPE_NO_PROGRESS", "") == "" and sys.stderr.isatty()
        self._progress: Any = None
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("training SAE"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[metrics]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("train", total=total, completed=start, metrics="")

    def update(self, step: int, metrics: dict[str, float] | None) -> None:
        if self.on_progress is not None:
            self.on_progress("training SAE", step, self.total)
        if self._progress is None:
            return
        text = None
        if metrics:
            text = (
                f"loss {metrics['loss']:.4g}  L0 {metrics['l0']:.1f}  EV {metrics['explained_variance']:.3f}  "
                f"dead {metrics['dead_fraction']:.1%}"
            )
        kwargs: dict[str, Any] = {"completed": step}
        if text:
            kwargs["metrics"] = text
        self._progress.update(self._task, **kwargs)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def train_sae(
    store: ActivationStore,
    cfg: TrainConfig,
    out: str | os.PathLike[str] | None = None,
    resume: bool = True,
    stop_after_steps: int | None = None,
    progress_bar: bool = True,
    on_log: OnLog | None = None,
    on_progress: OnProgress | None = None,
) -> TrainResult:
    """Train an SAE on ``store``; with ``out``, write checkpoints there and the final SAE (SAELens format).

    ``resume`` continues from the latest checkpoint in ``out`` (its config must match).
    ``stop_after_steps`` ends the call early after that many total steps, writing a checkpoint
    (how tests simulate an interruption). Under ``torchrun`` the processes train data-parallel.
    ``on_progress("training SAE", steps_done, steps)`` is called before the first step and after
    every step (on rank 0), beside the terminal bar of ``progress_bar``. ``on_log`` is a metrics logger
    (see :data:`OnLog`): it gets the logged loss values every ``log_every`` steps.
    """
    folder = Path(out) if out is not None else None
    with process_group() as world:
        check_same_arguments(
            {"store": str(store.folder), "shards": [s.get("sha256") for s in store.shards], "config": asdict(cfg),
             "out": str(folder), "resume": resume, "stop_after_steps": stop_after_steps},
            world,
        )  # fmt: skip
        return _train(store, cfg, folder, resume, stop_after_steps, progress_bar, on_log, on_progress, world)


def _train(
    store: ActivationStore,
    cfg: TrainConfig,
    folder: Path | None,
    resume: bool,
    stop_after_steps: int | None,
    progress_bar: bool,
    on_log: OnLog | None,
    on_progress: OnProgress | None,
    place: World,
) -> TrainResult:
    rank, world = place.rank, place.size
    if cfg.batch_size % world:
        raise SAEConfigError(f"batch_size={cfg.batch_size} must be divisible by the number of processes ({world})")
    sae, scale = _new_sae(store, cfg)
    optim = torch.optim.AdamW(
        sae.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=_fused_adam(sae)
    )
    run = _Run(sae, optim, scale, torch.zeros(sae.cfg.d_sae, dtype=torch.long), store.source)
    if (
        folder is not None
        and resume
        and (resumed := resume_checkpoint(folder, cfg, sae, optim, store.source)) is not None
    ):
        run.start, run.scale, run.history, run.last_fired = resumed
    steps = cfg.steps if stop_after_steps is None else min(cfg.steps, stop_after_steps)
    bar = _Bar(steps, run.start, progress_bar and rank == 0, on_progress if rank == 0 else None)
    t0 = time.perf_counter()
    try:
        done = _steps(run, store, cfg, steps, folder, rank, world, bar, on_log, t0)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    _finish(run, cfg, steps, folder, rank, world)
    return TrainResult(
        sae=sae,
        steps=steps,
        history=run.history,
        activations_per_second=done * cfg.batch_size / seconds if seconds > 0 else float("nan"),
        folder=folder,
    )


@dataclass
class _Run:
    """What a checkpoint holds besides the config: the SAE, its optimiser, the input scale and the counters."""

    sae: SAE
    optim: torch.optim.Optimizer
    scale: float
    """Input scale: raw activations are multiplied by it before the SAE sees them."""
    last_fired: torch.Tensor
    """The step at which each latent last fired."""
    source: dict[str, Any]
    """The training store's :attr:`~circuitscope.sae.store.ActivationStore.source` (checkpoints record it)."""
    start: int = 0
    """The step the loop (re)starts at."""
    history: list[dict[str, float]] = field(default_factory=list)


def _fused_adam(sae: SAE) -> bool:
    """Adam's fused kernel (one pass over each parameter per step) where torch has it for these parameters."""
    p = next(sae.parameters())
    return p.dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16) and p.device.type in ("cpu", "cuda")


def _new_sae(store: ActivationStore, cfg: TrainConfig) -> tuple[SAE, float]:
    """A freshly initialised SAE for ``store`` (decoder bias from a sample of it) and the input scale."""
    d_in = store.d_in
    sae_cfg = SAEConfig(
        architecture=cfg.architecture,
        d_in=d_in,
        d_sae=cfg.d_sae or cfg.expansion * d_in,
        k=cfg.k if ARCHITECTURES[cfg.architecture].uses_k else None,
        model_name=store.model_name,
        hook_name=store.hook,
        context_size=int(store.manifest.get("context_size", 128)),
        exclude_bos=bool(store.manifest.get("exclude_bos", True)),
        dataset=str(store.manifest.get("corpus", {}).get("name", "")),
    )
    sae = create_sae(sae_cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    sample = store.sample(min(store.n_tokens, 16_384), seed=cfg.seed)
    scale = 1.0
    if cfg.normalize == "expected_average_only_in":
        scale = float(math.sqrt(d_in) / sample.norm(dim=-1).mean().clamp_min(1e-12))
    sample = sample * scale
    b_dec = {
        "geometric_median": lambda: geometric_median(sample[:4096]),
        "mean": lambda: sample.mean(0),
        "zeros": lambda: torch.zeros(d_in),
    }[cfg.b_dec_init]()
    sae.initialize(gen, decoder_norm=1.0 if cfg.unit_decoder else 0.1, tied=cfg.tied_init, b_dec=b_dec)
    sae.init_learned_threshold(cfg.jumprelu_threshold_init)
    return sae, scale


def _steps(
    run: _Run,
    store: ActivationStore,
    cfg: TrainConfig,
    steps: int,
    folder: Path | None,
    rank: int,
    world: int,
    bar: _Bar,
    on_log: OnLog | None,
    t0: float,
) -> int:
    """Steps ``run.start`` .. ``steps - 1``, logging and checkpointing on the way; the number of steps taken."""
    model: nn.Module = _Step(run.sae)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model)
    dead_window = max(1, cfg.dead_after_tokens // cfg.batch_size)
    options = {
        "l1_weighting": cfg.l1_weighting,
        "aux_k": cfg.aux_k,
        "aux_coefficient": cfg.aux_coefficient,
        "bandwidth": cfg.bandwidth,
    }
    local = cfg.batch_size // world
    workspace: dict[str, torch.Tensor] = {}
    stream = store.batches(cfg.batch_size, seed=cfg.seed, start=run.start, shards_in_memory=cfg.shards_in_memory)
    for step in range(run.start, steps):
        batch = next(stream)[rank * local : (rank + 1) * local] * run.scale
        dead = (step - run.last_fired) >= dead_window
        ctx = StepContext(cfg.sparsity_at(step), dead_mask=dead, options=options, workspace=workspace)
        out = _optimizer_step(run, model, batch, ctx, cfg, step, world)
        metrics = None
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            metrics = _metrics(out, batch, step, cfg, dead, time.perf_counter() - t0, world)
            run.history.append(metrics)
            if on_log is not None and rank == 0:
                on_log(metrics)
        bar.update(step + 1, metrics)
        due = cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < steps
        if folder is not None and rank == 0 and due:
            save_checkpoint(
                folder, step + 1, cfg, run.sae, run.optim, run.last_fired, run.scale, run.history, run.source
            )
    return max(0, steps - run.start)


def _optimizer_step(
    run: _Run, model: nn.Module, batch: torch.Tensor, ctx: StepContext, cfg: TrainConfig, step: int, world: int
) -> TrainOutput:
    """One step at ``step``'s learning rate (decoder kept unit-norm if asked); the latents that fired are counted."""
    sae, optim = run.sae, run.optim
    for group in optim.param_groups:
        group["lr"] = cfg.lr_at(step)
    out: TrainOutput = model(batch, ctx)
    optim.zero_grad(set_to_none=True)
    out.loss.backward()
    if cfg.unit_decoder:
        sae.remove_parallel_decoder_grad()
    optim.step()
    if cfg.unit_decoder:
        sae.normalize_decoder()
    sae.after_optimizer_step()
    with torch.no_grad():
        fired = out.fired.clone()
        if world > 1:
            dist.all_reduce(fired)
        run.last_fired[fired > 0] = step + 1
    return out


def _finish(run: _Run, cfg: TrainConfig, steps: int, folder: Path | None, rank: int, world: int) -> None:
    """The last checkpoint; once every step is done, the input scale folded in and the SAE written (SAELens)."""
    if folder is not None and rank == 0:
        save_checkpoint(folder, steps, cfg, run.sae, run.optim, run.last_fired, run.scale, run.history, run.source)
    if steps == cfg.steps:
        run.sae.fold_activation_scale(run.scale)
        if folder is not None and rank == 0:
            save_sae(run.sae, folder, extra_metadata={"training": {**asdict(cfg), "betas": list(cfg.betas)}})
    if world > 1:
        dist.barrier()


@torch.no_grad()
def _metrics(
    out: TrainOutput, batch: torch.Tensor, step: int, cfg: TrainConfig, dead: torch.Tensor, seconds: float, world: int
) -> dict[str, float]:
    err = (out.recon - batch).pow(2).sum()
    var = (batch - batch.mean(0)).pow(2).sum()
    values = torch.stack([out.loss.detach(), err, var, out.l0.float()])
    if world > 1:
        dist.all_reduce(values)
        values[0] /= world
        values[3] /= world
    metrics = {
        "step": float(step + 1),
        "loss": float(values[0]),
        "l0": float(values[3]),
        "explained_variance": float(1 - values[1] / values[2].clamp_min(1e-12)),
        "dead_fraction": float(dead.float().mean()),
        "lr": cfg.lr_at(step),
        "seconds": round(seconds, 3),
    }
    for key, value in out.losses.items():
        metrics[key] = float(value)
    return metrics
