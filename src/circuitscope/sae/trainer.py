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
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from circuitscope.errors import DamagedCheckpointWarning
from circuitscope.progress import OnProgress
from circuitscope.sae.base import ARCHITECTURES, SAE, SAEConfig, StepContext, TrainOutput, create_sae
from circuitscope.sae.errors import SAEConfigError, SAEFormatError, UnknownArchitectureError
from circuitscope.sae.io import atomic_save_tensors, save_sae
from circuitscope.sae.store import ActivationStore

__all__ = ["TrainConfig", "TrainResult", "geometric_median", "train_sae"]

CHECKPOINT_VERSION = 1
_STEP_NAME = re.compile(r"step_(\d{8,})")


@dataclass
class TrainConfig:
    """How to train an SAE (sizes, optimiser, sparsity, bookkeeping)."""

    architecture: str = "topk"
    """``relu``, ``topk``, ``batchtopk`` or ``jumprelu``."""
    expansion: int = 16
    """``d_sae = expansion * d_in`` (ignored when ``d_sae`` is given)."""
    d_sae: int | None = None
    """Number of latents."""
    k: int = 32
    """Active latents per token (``topk``, ``batchtopk``)."""
    tokens: int = 2_000_000
    """Training activations to see (steps = tokens // batch_size; the store is cycled in epochs)."""
    batch_size: int = 4096
    """Activations per step (global, across DDP processes)."""
    lr: float = 4e-4
    """Peak learning rate."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam's betas."""
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay."""
    warmup_steps: int = 50
    """Linear learning-rate warm-up."""
    decay_fraction: float = 0.2
    """Final fraction of steps over which the learning rate decays linearly to zero."""
    sparsity_coefficient: float | None = None
    """L1 coefficient (``relu``; default 5) or L0 coefficient (``jumprelu``; default 1e-3 for unit-scale inputs)."""
    sparsity_warmup_steps: int = 100
    """Linear warm-up of the sparsity coefficient from zero."""
    l1_weighting: str = "decoder_norm"
    """``decoder_norm`` (Anthropic's 2024 update: penalty ``Σ f_i ||W_dec[i]||``) or ``plain``."""
    decoder_norm: str | None = None
    """``unit`` (decoder rows kept at norm 1) or ``none``; default ``none`` for decoder-norm-weighted L1, else unit."""
    normalize: str = "expected_average_only_in"
    """Input scaling in training: ``expected_average_only_in`` (mean norm becomes sqrt(d_in)) or ``none``."""
    b_dec_init: str = "geometric_median"
    """Decoder bias initialisation: ``geometric_median``, ``mean`` or ``zeros``."""
    tied_init: bool = True
    """Initialise the encoder as the decoder's transpose."""
    aux_k: int | None = None
    """AuxK latents (``topk``/``batchtopk``); default ``d_in // 2``."""
    aux_coefficient: float = 1 / 32
    """AuxK loss weight."""
    dead_after_tokens: int = 1_000_000
    """A latent that has not fired for this many activations counts as dead."""
    bandwidth: float = 0.001
    """JumpReLU's straight-through kernel width (in units of normalised activations)."""
    jumprelu_threshold_init: float = 0.001
    """JumpReLU's initial threshold."""
    seed: int = 0
    """Initialisation and data-order seed."""
    shards_in_memory: int = 8
    """Shards loaded and shuffled together."""
    checkpoint_every: int = 0
    """Steps between checkpoints (0: only at the end)."""
    log_every: int = 10
    """Steps between logged metrics."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes stored with the run."""

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise UnknownArchitectureError(
                f"unknown SAE architecture {self.architecture!r}; registered: {', '.join(sorted(ARCHITECTURES))}"
            )
        checks = {
            "expansion": self.expansion > 0,
            "k": self.k > 0,
            "tokens": self.tokens > 0,
            "batch_size": self.batch_size > 0,
            "lr": self.lr > 0,
            "warmup_steps": self.warmup_steps >= 0,
            "decay_fraction": 0 <= self.decay_fraction <= 1,
            "sparsity_warmup_steps": self.sparsity_warmup_steps >= 0,
            "dead_after_tokens": self.dead_after_tokens > 0,
            "bandwidth": self.bandwidth > 0,
            "checkpoint_every": self.checkpoint_every >= 0,
            "log_every": self.log_every > 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise SAEConfigError(f"invalid training settings: {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)}")
        for name, value, allowed in (
            ("l1_weighting", self.l1_weighting, ("decoder_norm", "plain")),
            ("decoder_norm", self.decoder_norm, (None, "unit", "none")),
            ("normalize", self.normalize, ("expected_average_only_in", "none")),
            ("b_dec_init", self.b_dec_init, ("geometric_median", "mean", "zeros")),
        ):
            if value not in allowed:
                raise SAEConfigError(f"{name} must be one of {allowed}, got {value!r}")
        self.betas = (float(self.betas[0]), float(self.betas[1]))

    @property
    def steps(self) -> int:
        return max(1, self.tokens // self.batch_size)

    @property
    def unit_decoder(self) -> bool:
        if self.decoder_norm is not None:
            return self.decoder_norm == "unit"
        return not (ARCHITECTURES[self.architecture].decoder_norm_l1 and self.l1_weighting == "decoder_norm")

    @property
    def sparsity(self) -> float:
        if self.sparsity_coefficient is not None:
            return self.sparsity_coefficient
        return ARCHITECTURES[self.architecture].default_sparsity_coefficient

    def lr_at(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        decay_steps = int(self.steps * self.decay_fraction)
        start = self.steps - decay_steps
        decay = 1.0 if step < start or decay_steps == 0 else max(0.0, (self.steps - step) / decay_steps)
        return self.lr * warm * decay

    def sparsity_at(self, step: int) -> float:
        if not self.sparsity_warmup_steps:
            return self.sparsity
        return self.sparsity * min(1.0, (step + 1) / self.sparsity_warmup_steps)


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


def _dist() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _init_distributed() -> bool:
    """Join the process group torchrun describes; True if this call created it."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    return True


def _checkpoint_state(sae: SAE, optim: torch.optim.Optimizer, last_fired: torch.Tensor) -> dict[str, torch.Tensor]:
    tensors = {f"sae.{k}": v for k, v in sae.state_dict().items()}
    params = dict(sae.named_parameters())
    by_id = {id(p): n for n, p in params.items()}
    for p, state in optim.state.items():
        name = by_id[id(p)]
        for key, value in state.items():
            tensors[f"optim.{name}.{key}"] = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    tensors["trainer.last_fired"] = last_fired
    return tensors


def _restore(sae: SAE, optim: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    sae.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("sae.")})
    params = dict(sae.named_parameters())
    for name, p in params.items():
        state = {k.rsplit(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"optim.{name}.")}
        if state:
            optim.state[p] = state
    return tensors["trainer.last_fired"]


def _checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoint folders, newest first (``notes/``, ``step_abc/``, ``*.partial`` are ignored)."""
    found = []
    for path in (folder / "checkpoints").glob("step_*"):
        match = _STEP_NAME.fullmatch(path.name)
        if match is not None and path.is_dir() and (path / "trainer.json").is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found, reverse=True)]


class _DamagedCheckpointError(Exception):
    """A checkpoint file that cannot be read (the message names it)."""


def _read_trainer_json(ckpt: Path) -> dict[str, Any]:
    path = ckpt / "trainer.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _DamagedCheckpointError(f"{path} is damaged (not valid JSON: {err})") from err
    if not isinstance(meta, dict):
        raise _DamagedCheckpointError(f"{path} is damaged (not a JSON object)")
    kinds = {"step": int, "scale": (int, float), "train_config": dict, "history": list}
    wrong = [key for key, kind in kinds.items() if not isinstance(meta.get(key), kind)]
    if wrong:
        raise _DamagedCheckpointError(f"{path} is damaged (missing or mistyped fields: {', '.join(wrong)})")
    return meta


def _saved_config(ckpt: Path, meta: dict[str, Any]) -> TrainConfig:
    raw = meta["train_config"]
    try:
        return TrainConfig(**{**raw, "betas": tuple(raw["betas"])})
    except (KeyError, TypeError, ValueError) as err:
        raise _DamagedCheckpointError(
            f"{ckpt / 'trainer.json'} is damaged (its train_config does not load: {err})"
        ) from err


def _read_state_tensors(ckpt: Path) -> dict[str, torch.Tensor]:
    path = ckpt / "state.safetensors"
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise _DamagedCheckpointError(f"{path} is damaged (not a readable safetensors file: {err})") from err
    if "trainer.last_fired" not in tensors:
        raise _DamagedCheckpointError(f"{path} is damaged (no 'trainer.last_fired' tensor)")
    return tensors


def _resume(
    folder: Path, cfg: TrainConfig, sae: SAE, optim: torch.optim.Optimizer
) -> tuple[int, float, list[dict[str, float]], torch.Tensor] | None:
    """Restore the newest intact checkpoint in ``folder``: (step, scale, history, last_fired), or None if none.

    Damaged checkpoints are skipped with a :class:`DamagedCheckpointWarning` naming them; if every
    checkpoint is damaged the run is refused (a fresh start would overwrite them).
    """
    damaged: list[str] = []
    for ckpt in _checkpoints(folder):
        try:
            meta = _read_trainer_json(ckpt)
            if meta.get("version") != CHECKPOINT_VERSION:
                raise SAEFormatError(
                    f"{ckpt} has checkpoint version {meta.get('version')}, expected {CHECKPOINT_VERSION}"
                )
            saved = _saved_config(ckpt, meta)
            if asdict(saved) != asdict(cfg):
                diff = [k for k in asdict(cfg) if asdict(cfg)[k] != asdict(saved)[k]]
                raise SAEConfigError(
                    f"{folder} holds a run with different settings ({', '.join(diff)}); pass the same settings to "
                    "resume, or a new --out folder (nothing was changed)"
                )
            tensors = _read_state_tensors(ckpt)
        except _DamagedCheckpointError as err:
            damaged.append(str(err))
            continue
        last_fired = _restore(sae, optim, tensors)
        if damaged:
            warnings.warn(
                DamagedCheckpointWarning(
                    f"skipped damaged checkpoints ({'; '.join(damaged)}); resuming from the newest intact one, "
                    f"{ckpt}; the later steps are trained again"
                ),
                stacklevel=4,
            )
        return int(meta["step"]), float(meta["scale"]), list(meta["history"]), last_fired
    if damaged:
        raise SAEFormatError(
            f"no intact checkpoint to resume in {folder}: {'; '.join(damaged)}. Nothing was changed. To start over, "
            "train with resume=False (circuitscope sae train --no-resume), or delete (or move away) "
            f"{folder / 'checkpoints'}"
        )
    return None


def _save_checkpoint(
    folder: Path,
    step: int,
    cfg: TrainConfig,
    sae: SAE,
    optim: torch.optim.Optimizer,
    last_fired: torch.Tensor,
    scale: float,
    history: list[dict[str, float]],
) -> None:
    target = folder / "checkpoints" / f"step_{step:08d}"
    partial = target.with_name(target.name + ".partial")  # renamed once complete: a crash leaves no half checkpoint
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    atomic_save_tensors(_checkpoint_state(sae, optim, last_fired), partial / "state.safetensors")
    payload = {
        "format": "circuitscope.sae_checkpoint",
        "version": CHECKPOINT_VERSION,
        "step": step,
        "scale": scale,
        "train_config": asdict(cfg),
        "sae_config": sae.cfg.to_dict(),
        "history": history,
    }
    (partial / "trainer.json").write_text(json.dumps(payload, indent=2))
    if target.exists():
        shutil.rmtree(target)
    os.replace(partial, target)


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
    on_log: Callable[[dict[str, float]], None] | None = None,
    on_progress: OnProgress | None = None,
) -> TrainResult:
    """Train an SAE on ``store``; with ``out``, write checkpoints there and the final SAE (SAELens format).

    ``resume`` continues from the latest checkpoint in ``out`` (its config must match).
    ``stop_after_steps`` ends the call early after that many total steps, writing a checkpoint
    (how tests simulate an interruption). Under ``torchrun`` the processes train data-parallel.
    ``on_progress("training SAE", steps_done, steps)`` is called before the first step and after
    every step (on rank 0), beside the terminal bar of ``progress_bar``.
    """
    created = _init_distributed()
    try:
        return _train(
            store, cfg, Path(out) if out is not None else None, resume, stop_after_steps, progress_bar, on_log,
            on_progress,
        )  # fmt: skip
    finally:
        if created:
            dist.destroy_process_group()


def _train(
    store: ActivationStore,
    cfg: TrainConfig,
    folder: Path | None,
    resume: bool,
    stop_after_steps: int | None,
    progress_bar: bool,
    on_log: Callable[[dict[str, float]], None] | None,
    on_progress: OnProgress | None = None,
) -> TrainResult:
    rank, world = _dist()
    if cfg.batch_size % world:
        raise SAEConfigError(f"batch_size={cfg.batch_size} must be divisible by the number of processes ({world})")
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
    optim = torch.optim.AdamW(sae.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    last_fired = torch.zeros(sae_cfg.d_sae, dtype=torch.long)  # step at which each latent last fired
    start = 0
    history: list[dict[str, float]] = []
    if folder is not None and resume and (resumed := _resume(folder, cfg, sae, optim)) is not None:
        start, scale, history, last_fired = resumed
    model: nn.Module = _Step(sae)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model)
    steps = cfg.steps if stop_after_steps is None else min(cfg.steps, stop_after_steps)
    dead_window = max(1, cfg.dead_after_tokens // cfg.batch_size)
    options = {
        "l1_weighting": cfg.l1_weighting,
        "aux_k": cfg.aux_k,
        "aux_coefficient": cfg.aux_coefficient,
        "bandwidth": cfg.bandwidth,
    }
    local = cfg.batch_size // world
    stream = store.batches(cfg.batch_size, seed=cfg.seed, start=start, shards_in_memory=cfg.shards_in_memory)
    bar = _Bar(steps, start, progress_bar and rank == 0, on_progress if rank == 0 else None)
    t0 = time.perf_counter()
    done = 0
    try:
        for step in range(start, steps):
            batch = next(stream)[rank * local : (rank + 1) * local] * scale
            for group in optim.param_groups:
                group["lr"] = cfg.lr_at(step)
            dead = (step - last_fired) >= dead_window
            ctx = StepContext(sparsity_coefficient=cfg.sparsity_at(step), dead_mask=dead, options=options)
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
                fired = (out.acts > 0).sum(0)
                if world > 1:
                    dist.all_reduce(fired)
                last_fired[fired > 0] = step + 1
            done += 1
            metrics = None
            if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
                metrics = _metrics(out, batch, step, cfg, dead, time.perf_counter() - t0, world)
                history.append(metrics)
                if on_log is not None and rank == 0:
                    on_log(metrics)
            bar.update(step + 1, metrics)
            if (
                folder is not None
                and rank == 0
                and cfg.checkpoint_every
                and (step + 1) % cfg.checkpoint_every == 0
                and step + 1 < steps
            ):
                _save_checkpoint(folder, step + 1, cfg, sae, optim, last_fired, scale, history)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    finished = steps == cfg.steps
    if folder is not None and rank == 0:
        _save_checkpoint(folder, steps, cfg, sae, optim, last_fired, scale, history)
    if finished:
        sae.fold_activation_scale(scale)
        if folder is not None and rank == 0:
            save_sae(sae, folder, extra_metadata={"training": {**asdict(cfg), "betas": list(cfg.betas)}})
    if world > 1:
        dist.barrier()
    return TrainResult(
        sae=sae,
        steps=steps,
        history=history,
        activations_per_second=done * cfg.batch_size / seconds if seconds > 0 else float("nan"),
        folder=folder,
    )


@torch.no_grad()
def _metrics(
    out: TrainOutput, batch: torch.Tensor, step: int, cfg: TrainConfig, dead: torch.Tensor, seconds: float, world: int
) -> dict[str, float]:
    err = (out.recon - batch).pow(2).sum()
    var = (batch - batch.mean(0)).pow(2).sum()
    values = torch.stack([out.loss.detach(), err, var, (out.acts > 0).float().sum(-1).mean()])
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
