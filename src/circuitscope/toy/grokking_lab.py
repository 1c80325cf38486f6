"""``circuitscope lab grokking``: train modular addition until it groks, and track the progress measures.

Follows Nanda et al. (2023), "Progress measures for grokking via mechanistic interpretability":
a 1-layer transformer (no LayerNorm, ReLU MLP) trained full-batch with AdamW and heavy weight
decay on a fraction of the pairs of ``a + b mod p``. Tracked at every checkpoint: train and test
loss and accuracy, the sum of squared weights and the embedding's Fourier norms; after training,
the key frequencies (from the final embedding) give the restricted and excluded losses at every
checkpoint. Phases (our operational definitions, stated in the report): memorisation ends when
train accuracy first reaches 99%; circuit formation ends when test accuracy first reaches 50%;
cleanup ends when test loss first drops below 0.1 (generalisation).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from circuitscope.engine.batching import apply_in_batches
from circuitscope.models.toy.modeling import ToyTransformer
from circuitscope.progress import OnProgress, track
from circuitscope.toy.checkpoint import load_model_weights
from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.grokking import (
    ModularAddition,
    embedding_fourier_norms,
    fast_last_logits,
    key_frequencies,
    logit_table,
    progress_losses,
)
from circuitscope.toy.grokking_step import fast_last_loss
from circuitscope.toy.lab_config import LabConfig, lab_preset
from circuitscope.toy.model import build_toy_of
from circuitscope.toy.threads import fastest_thread_count
from circuitscope.toy.trainer import TrainConfig, TrainResult, full_batch, train

__all__ = ["GrokkingConfig", "GrokkingResult", "build_grokking_model", "run_grokking"]

GENERALISED = 0.1
"""Test loss below which a run counts as generalised."""


@dataclass(frozen=True)
class GrokkingConfig(LabConfig):
    """The modular-addition experiment (trained full-batch)."""

    p: int = 53
    """Modulus (prime)."""
    train_fraction: float = 0.5
    """Fraction of the p^2 pairs used for training."""
    betas: tuple[float, float] = (0.9, 0.98)
    """AdamW betas."""
    lr: float = 3e-3
    """AdamW learning rate."""
    weight_decay: float = 1.0
    """AdamW weight decay (the driver of grokking)."""
    warmup_steps: int = 10
    """Linear warm-up steps."""
    steps: int = 2000
    """Full-batch training steps."""
    checkpoint_every: int = 100
    """Steps between checkpoints (metrics and saved weights)."""
    stop_when_generalised: bool = False
    """Stop at the first checkpoint whose test loss is below 0.1 (the rest of the curve is then missing)."""
    d_head: int = 16
    """Width of each head."""
    d_mlp: int = 256
    """MLP width (ReLU)."""

    def __post_init__(self) -> None:
        ModularAddition(self.p, self.train_fraction, self.seed)  # validates p and the fraction
        if self.n_heads < 1 or self.d_head < 1 or self.d_model < 1 or self.d_mlp < 1:
            raise LabConfigError("n_heads, d_head, d_model and d_mlp must be positive")
        super().__post_init__()

    @classmethod
    def preset(cls, name: str) -> GrokkingConfig:
        """``default`` (small, groks in minutes) or ``paper`` (Nanda et al.: p = 113, 30%, d_model 128, ...)."""
        widths = {"p": 113, "train_fraction": 0.3, "d_model": 128, "d_head": 32, "d_mlp": 512}
        return lab_preset(cls, "grokking", name, {**widths, "lr": 1e-3, "steps": 25_000})


@dataclass
class GrokkingResult:
    """Curves over training (one entry per checkpoint step) and the derived phases."""

    config: GrokkingConfig
    steps: list[int]
    train_loss: list[float]
    test_loss: list[float]
    train_accuracy: list[float]
    test_accuracy: list[float]
    weight_norm: list[float]
    """Sum of squared weights."""
    fourier_norms: list[list[float]]
    """Per checkpoint, the embedding's norm along each frequency k = 1 .. (p-1)/2."""
    key_frequencies: list[int]
    """Key frequencies of the final embedding."""
    restricted_loss: list[float]
    excluded_loss: list[float]
    seconds: list[float]
    """Wall-clock seconds since this (possibly resumed) run started, at each checkpoint."""
    phases: dict[str, list[int | None]] = field(default_factory=dict)
    """``memorisation``, ``circuit_formation``, ``cleanup`` -> [start step, end step or None]."""
    generalised_step: int | None = None
    """First checkpoint step with test loss below 0.1."""
    threads: int | None = None
    """torch threads the training ran on (given, or measured fastest of 1 and 2 for this model)."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["config"] = asdict(self.config)
        return out

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` payload: ``test_loss`` is the list over training (one value per checkpoint step)."""
        out = self.to_dict()
        out["generalised"] = self.generalised_step is not None
        out["seconds_to_generalise"] = (
            self.seconds[self.steps.index(self.generalised_step)] if self.generalised_step is not None else None
        )
        return out


def build_grokking_model(config: GrokkingConfig) -> ToyTransformer:
    """Nanda et al.'s 1-layer model of ``config``: no LayerNorm, ReLU MLP, no biases, fan-in init; inputs ``a b =``."""
    return build_toy_of(
        config, d_vocab=config.p + 1, n_ctx=3, n_layers=1, layer_norm=False, act_fn="relu", init="fan_in", bias=False
    )


def _phases(result: GrokkingResult) -> dict[str, list[int | None]]:
    def first(values: list[float], ok: Any) -> int | None:
        return next((s for s, v in zip(result.steps, values, strict=True) if ok(v)), None)

    memorised = first(result.train_accuracy, lambda v: v >= 0.99)
    formed = first(result.test_accuracy, lambda v: v >= 0.5)
    clean = first(result.test_loss, lambda v: v < GENERALISED)
    return {
        "memorisation": [0, memorised],
        "circuit_formation": [memorised, formed] if memorised is not None else [None, None],
        "cleanup": [formed, clean] if formed is not None else [None, None],
    }


def _metrics(config: GrokkingConfig, task: ModularAddition) -> dict[str, Any]:
    """The curves measured at every checkpoint: one pass over all pairs gives the losses and accuracies."""
    x, y, mask = task.inputs(), task.labels(), task.train_mask()
    start = time.perf_counter()
    memo: dict[str, float] = {}

    def measure_all(m: torch.nn.Module) -> float:
        assert isinstance(m, ToyTransformer)
        logits = apply_in_batches(lambda rows: fast_last_logits(m, rows), x, 4096)
        losses = torch.nn.functional.cross_entropy(logits, y, reduction="none")
        correct = (logits.argmax(-1) == y).float()
        memo.update(
            test_loss=float(losses[~mask].mean()),
            train_accuracy=float(correct[mask].mean()),
            test_accuracy=float(correct[~mask].mean()),
            weight_norm=float(sum(p.pow(2).sum() for p in m.parameters())),
            seconds=time.perf_counter() - start,
        )
        return float(losses[mask].mean())

    metrics: dict[str, Any] = {"train_loss": measure_all}  # MetricFns (fourier_norms takes a ToyTransformer)
    for name in ("test_loss", "train_accuracy", "test_accuracy", "weight_norm", "seconds"):
        metrics[name] = lambda _m, name=name: memo[name]
    metrics["fourier_norms"] = lambda m: embedding_fourier_norms(m, config.p)
    return metrics


def _train(
    config: GrokkingConfig, task: ModularAddition, folder: Path, threads: int | None, on_progress: OnProgress | None
) -> TrainResult:
    """Train (resuming from ``folder``); with ``stop_when_generalised``, in chunks of five checkpoints."""
    mask = task.train_mask()
    xt, yt = task.inputs()[mask], task.labels()[mask]

    def loss_fn(m: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        assert isinstance(m, ToyTransformer)
        return fast_last_loss(m, batch[0], batch[1])

    model, metrics = build_grokking_model(config), _metrics(config, task)
    identity = {"task": "modular_addition", "p": config.p, "train_fraction": config.train_fraction}
    if threads is None:  # a forward and backward pass of the full batch, timed on 1 and 2 threads

        def forward_backward() -> None:
            loss_fn(model, (xt, yt)).backward()
            model.zero_grad(set_to_none=True)

        threads = fastest_thread_count(forward_backward)

    def run(steps: int, report: OnProgress | None) -> TrainResult:
        return train(
            model,
            loss_fn,
            full_batch(xt, yt),
            TrainConfig.of(config, steps=steps, threads=threads),
            out=folder,
            metrics=metrics,
            identity=identity,
            description="grokking",
            on_progress=report,
        )

    if not config.stop_when_generalised:
        return run(config.steps, on_progress)

    def whole_run(stage: str, steps: int, _chunk_steps: int) -> None:
        if on_progress is not None:  # the steps of the whole run, not of the chunk
            on_progress(stage, steps, config.steps)

    # train in chunks of checkpoints, stopping at the first generalised one (same checkpoints as one run)
    done = 0
    while True:
        done = min(config.steps, done + config.checkpoint_every * 5)
        result = run(done, whole_run)
        if done >= config.steps or any(v < GENERALISED for v in result.metrics["test_loss"]):
            if on_progress is not None:
                on_progress("grokking", done, done)  # stopped early: the run is complete
            return result


def run_grokking(
    config: GrokkingConfig, out: str | Path, threads: int | None = None, on_progress: OnProgress | None = None
) -> GrokkingResult:
    """Train (resuming from ``out`` if it holds a run of this configuration) and measure.

    ``on_progress(stage, done, total)`` is told the training steps (``grokking``) and then the
    checkpoints measured (``restricted and excluded loss``).
    """
    folder = Path(out)
    task = ModularAddition(config.p, config.train_fraction, config.seed)
    run = _train(config, task, folder, threads, on_progress)
    m = run.metrics
    keys = key_frequencies(torch.tensor(m["fourier_norms"][-1]))
    restricted, excluded = [], []
    probe, mask = build_grokking_model(config), task.train_mask()
    for step in track(run.metric_steps, "restricted and excluded loss", on_progress):
        probe.load_state_dict(load_model_weights(folder, step))
        r, e = progress_losses(logit_table(probe, task), keys, mask)
        restricted.append(r)
        excluded.append(e)
    names = ("train_loss", "test_loss", "train_accuracy", "test_accuracy", "weight_norm", "fourier_norms", "seconds")
    curves: dict[str, Any] = {name: m[name] for name in names}  # GrokkingResult's fields of the same names
    result = GrokkingResult(
        config=config,
        steps=run.metric_steps,
        key_frequencies=keys,
        restricted_loss=restricted,
        excluded_loss=excluded,
        threads=run.config.threads,
        **curves,
    )
    result.phases = _phases(result)
    result.generalised_step = result.phases["cleanup"][1]
    return result
