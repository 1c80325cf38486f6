"""Training every layer's transcoder at once from one model forward per batch: no activation store on disk.

Each step runs the model once on ``batch_contexts`` contexts, keeping only the covered layers'
MLP inputs and outputs (the pass stops after the last of them: no unembedding), and takes one
Adam step on the whole :class:`TranscoderSet` (one optimiser over every layer). Inputs and outputs
are scaled per layer to a mean norm of ``sqrt(d)`` for training (the scales come from the first
batch and are folded into the weights at the end, so the saved set reads raw activations).

A run is a pure function of the model, the corpus and the :class:`TranscoderTrainConfig`: step
``i`` sees contexts ``i * batch_contexts ...`` of the seeded context order, the learning rate is a
function of the step, and a checkpoint holds everything else (weights, Adam's moments, the
feature-firing counters, the scales, the history), so an interrupted run resumed from its last
checkpoint ends with the same weights as an uninterrupted one. Under ``torchrun`` every process
runs the model on its share of each step's contexts and the gradients are averaged
(:mod:`circuitscope.engine.distributed`): the result equals one process's to float tolerance.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from safetensors import SafetensorError
from safetensors.torch import load_file

from circuitscope.core.files import read_json_object
from circuitscope.core.fingerprint import model_fingerprint
from circuitscope.engine.distributed import World, check_same_arguments, process_group, shard
from circuitscope.progress import SILENT, OnProgress, track
from circuitscope.sae.checkpoint import checkpoint_folders, checkpoint_tensors, restore_tensors, write_checkpoint
from circuitscope.sae.corpus import Contexts, Corpus, build_contexts, default_corpus
from circuitscope.transcoders.errors import TranscoderConfigError, TranscoderFormatError
from circuitscope.transcoders.io import CONFIG_FILENAME, read_transcoder_config, save_transcoders
from circuitscope.transcoders.modules import TranscoderConfig, TranscoderSet, input_site_for
from circuitscope.transcoders.objective import step_loss
from circuitscope.transcoders.train_config import TranscoderTrainConfig

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["OnLog", "TranscoderTrainResult", "fold_scales", "train_transcoders", "transcoder_config"]

OnLog = Callable[[dict[str, float]], None]
"""``on_log(metrics)``: called on rank 0 every ``log_every`` steps with that step's logged values."""
CHECKPOINT_FORMAT = "circuitscope.transcoder_checkpoint"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class TranscoderTrainResult:
    """A finished (or resumed-and-finished) training run."""

    transcoders: TranscoderSet
    """The trained set, scales folded in: it reads raw activations."""
    steps: int
    """Optimiser steps taken in total."""
    tokens: int
    """Training tokens seen in total."""
    history: list[dict[str, float]]
    """Logged metrics: step, loss, fvu, l0, dead_fraction, lr, seconds."""
    tokens_per_second: float
    """Training throughput of this call (model forward included, all processes together)."""
    folder: Path | None
    """Where the transcoders and their checkpoints were written."""

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.transcoders.cfg.to_dict(),
            "steps": self.steps,
            "tokens": self.tokens,
            "tokens_per_second": self.tokens_per_second,
            "final": self.history[-1] if self.history else {},
            "folder": None if self.folder is None else str(self.folder),
        }


def _has_bos(model: HookedModel) -> bool:
    tok = model.tok
    return tok.default_prepend_bos and tok.bos_token_id is not None


def transcoder_config(model: HookedModel, cfg: TranscoderTrainConfig, model_name: str = "") -> TranscoderConfig:
    """The :class:`TranscoderConfig` a training run of ``cfg`` makes for ``model`` (refusing layers it lacks)."""
    n = model.cfg.n_layers
    layers = tuple(range(n)) if cfg.layers is None else cfg.layers
    beyond = [layer for layer in layers if not 0 <= layer < n]
    if beyond:
        raise TranscoderConfigError(f"layers {beyond} do not exist: the model has {n} layers (0..{n - 1})")
    d = model.cfg.d_model
    d_sae = cfg.d_sae if cfg.d_sae is not None else cfg.expansion * d
    if cfg.architecture == "topk" and cfg.k > d_sae:
        raise TranscoderConfigError(f"k={cfg.k} is more than the d_sae={d_sae} features per layer; lower k")
    return TranscoderConfig(
        cfg.kind,
        cfg.architecture,
        d,
        d_sae,
        d,
        layers,
        input_site=input_site_for(model),
        skip=cfg.skip,
        k=cfg.k if cfg.architecture == "topk" else None,
        model_name=model_name or model.cfg.model_type,
        model_fingerprint=model_fingerprint(model),
        exclude_bos=cfg.exclude_bos,
    )


@torch.no_grad()
def fold_scales(tc: TranscoderSet, in_scale: torch.Tensor, out_scale: torch.Tensor) -> TranscoderSet:
    """A copy of ``tc`` (trained on ``x * in_scale`` to predict ``y * out_scale``) for raw ``x`` and ``y``.

    Pre-activations, and so thresholds and features, are unchanged: ``(x s) W = x (s W)``.
    """
    out = TranscoderSet(tc.cfg)
    out.load_state_dict(tc.state_dict())
    out.W_enc.mul_(in_scale[:, None, None].to(out.W_enc.dtype))
    for i, dec in enumerate(out.W_dec):
        dec.div_(out_scale[i : i + dec.shape[0], None, None].to(dec.dtype))
    out.b_dec.div_(out_scale[:, None].to(out.b_dec.dtype))
    if out.W_skip is not None:
        out.W_skip.mul_((in_scale / out_scale)[:, None, None].to(out.W_skip.dtype))
    return out


@dataclass
class _Run:
    """What a checkpoint holds besides the config: weights, optimiser, scales, counters, history."""

    tc: TranscoderSet
    optim: torch.optim.Optimizer
    in_scale: torch.Tensor
    out_scale: torch.Tensor
    last_fired: torch.Tensor
    """The step at which each feature ``[n_layers, d_sae]`` last fired."""
    source: dict[str, Any]
    start: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def train_transcoders(
    model: HookedModel,
    cfg: TranscoderTrainConfig | None = None,
    corpus: Corpus | None = None,
    out: str | os.PathLike[str] | None = None,
    *,
    model_name: str = "",
    resume: bool = True,
    stop_after_steps: int | None = None,
    on_progress: OnProgress | None = None,
    on_log: OnLog | None = None,
) -> TranscoderTrainResult:
    """Train transcoders for every layer of ``cfg.layers`` at once; with ``out``, checkpoints and the final set there.

    ``corpus`` defaults to :func:`~circuitscope.sae.default_corpus`. ``resume`` continues from the newest
    checkpoint in ``out`` (its settings and model must match; another run's folder is refused before any
    work). ``stop_after_steps`` ends early after that many total steps, writing a checkpoint (how tests
    interrupt a run). ``on_progress("training transcoders", step, steps)`` reports progress (None: the
    default bar). Under ``torchrun`` the processes split each step's contexts.
    """
    cfg = cfg if cfg is not None else TranscoderTrainConfig()
    tcfg = transcoder_config(model, cfg, model_name)
    folder = Path(out) if out is not None else None
    if folder is not None:
        _refuse_other_run(folder, tcfg, cfg)
    corpus = corpus if corpus is not None else default_corpus()
    with process_group() as world:
        check_same_arguments(
            {"config": cfg.to_dict(), "transcoders": tcfg.to_dict(), "corpus": corpus.sha256, "out": str(folder),
             "resume": resume, "stop_after_steps": stop_after_steps},
            world,
        )  # fmt: skip
        if cfg.batch_contexts % world.size:
            raise TranscoderConfigError(
                f"batch_contexts={cfg.batch_contexts} must be divisible by the number of processes ({world.size})"
            )
        return _train(model, cfg, tcfg, corpus, folder, resume, stop_after_steps, on_progress, on_log, world)


def _refuse_other_run(folder: Path, tcfg: TranscoderConfig, cfg: TranscoderTrainConfig) -> None:
    """Refuse, before any work, a folder whose transcoders or checkpoints are of other settings or another model."""
    if (folder / CONFIG_FILENAME).is_file():
        saved, metadata = read_transcoder_config(folder)
        if saved != tcfg or metadata.get("train_config") not in (None, cfg.to_dict()):
            raise TranscoderConfigError(
                f"{folder} holds transcoders of another run (other settings or another model); give a new output "
                "folder, or the same settings to resume it (nothing was changed)"
            )
    ckpts = checkpoint_folders(folder) if folder.is_dir() else []
    if ckpts:
        meta = _read_meta(ckpts[0])
        if meta.get("train_config") != cfg.to_dict() or meta.get("transcoder_config") != tcfg.to_dict():
            raise TranscoderConfigError(
                f"{folder} holds checkpoints of a run with other settings or of another model; give the same "
                "settings to resume it, or a new output folder (nothing was changed)"
            )


def _read_meta(ckpt: Path) -> dict[str, Any]:
    meta = read_json_object(ckpt / "trainer.json", TranscoderFormatError)
    if meta.get("format") != CHECKPOINT_FORMAT or meta.get("version") != CHECKPOINT_VERSION:
        raise TranscoderFormatError(
            f"{ckpt} is not a transcoder checkpoint of version {CHECKPOINT_VERSION}; move it away to start over"
        )
    return meta


def _train(
    model: HookedModel,
    cfg: TranscoderTrainConfig,
    tcfg: TranscoderConfig,
    corpus: Corpus,
    folder: Path | None,
    resume: bool,
    stop_after_steps: int | None,
    on_progress: OnProgress | None,
    on_log: OnLog | None,
    world: World,
) -> TranscoderTrainResult:
    has_bos = _has_bos(model)
    steps = cfg.steps(has_bos)
    contexts = build_contexts(model, corpus, cfg.context_size, seed=cfg.seed)  # step i: contexts i*B.. of the shuffle
    tc = TranscoderSet(tcfg)
    n = len(tcfg.layers)
    fused = tc.W_enc.device.type in ("cpu", "cuda")  # one pass over each parameter per step (deterministic)
    optim = torch.optim.Adam(tc.parameters(), lr=cfg.lr, betas=cfg.betas, fused=fused)
    source = {"model_fingerprint": tcfg.model_fingerprint, "corpus_sha256": corpus.sha256, "corpus": corpus.name}
    run = _Run(tc, optim, torch.ones(n), torch.ones(n), torch.zeros(n, tcfg.d_sae, dtype=torch.long), source)
    if folder is not None and resume:
        _resume(run, folder)
    last = steps if stop_after_steps is None else min(steps, stop_after_steps)
    t0, done = time.perf_counter(), 0
    skip_first = 1 if has_bos and cfg.exclude_bos else 0
    todo = range(run.start, last)
    stage = "training transcoders"
    for step in track(todo, stage, on_progress if world.is_main else SILENT, total=len(todo)):
        x, y = _batch(model, tc, contexts, step, cfg, skip_first, world)
        if step == 0:
            _initialize(run, x, y, cfg, world)
        _step(
            run, x * run.in_scale[:, None, None], y * run.out_scale[:, None, None], step, steps, cfg, world, on_log, t0
        )
        done += 1
        if folder is not None and world.is_main and cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0:
            _checkpoint(run, folder, step + 1, cfg)
    seconds = time.perf_counter() - t0
    final = fold_scales(run.tc, run.in_scale, run.out_scale)
    if folder is not None and world.is_main:
        _checkpoint(run, folder, last, cfg)
        if last == steps:
            metadata = {"train_config": cfg.to_dict(), "steps": steps, "corpus": corpus.name, "history": run.history}
            save_transcoders(final, folder, metadata=metadata)
    if world.size > 1:
        dist.barrier()
    tokens_per_step = cfg.tokens_per_step(has_bos)
    rate = done * tokens_per_step / seconds if seconds > 0 else math.nan
    return TranscoderTrainResult(final, last, last * tokens_per_step, run.history, rate, folder)


def _batch(
    model: HookedModel,
    tc: TranscoderSet,
    contexts: Contexts,
    step: int,
    cfg: TranscoderTrainConfig,
    skip_first: int,
    world: World,
) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's share of step ``step``'s rows: MLP inputs ``[n, rows, d_in]`` and outputs ``[n, rows, d_out]``."""
    total = contexts.tokens.shape[0]
    mine = shard(cfg.batch_contexts, world)
    rows = torch.tensor([(step * cfg.batch_contexts + j) % total for j in mine])
    tokens = contexts.tokens[rows]
    names = [h for layer in tc.layers for h in (tc.input_hook(layer), tc.output_hook(layer))]
    with torch.inference_mode():
        cache = model.cache_activations(tokens, names)
    d_in, d_out = tc.cfg.d_in, tc.cfg.d_out
    x = torch.stack([cache[tc.input_hook(layer)][:, skip_first:].reshape(-1, d_in) for layer in tc.layers])
    y = torch.stack([cache[tc.output_hook(layer)][:, skip_first:].reshape(-1, d_out) for layer in tc.layers])
    dtype = tc.W_enc.dtype
    return x.to(dtype).clone(), y.to(dtype).clone()  # out of inference mode: the step differentiates through x @ W


def _all_sum(t: torch.Tensor, world: World) -> torch.Tensor:
    if world.size > 1:
        dist.all_reduce(t)
    return t


@torch.no_grad()
def _initialize(run: _Run, x: torch.Tensor, y: torch.Tensor, cfg: TranscoderTrainConfig, world: World) -> None:
    """Scales (mean norm -> sqrt(d)) and decoder biases (mean output) from the first batch; random weights."""
    rows = _all_sum(torch.tensor(float(x.shape[1])), world)
    norms = _all_sum(torch.stack([x.norm(dim=-1).sum(-1), y.norm(dim=-1).sum(-1)]).double(), world) / rows
    c = run.tc.cfg
    run.in_scale = (c.d_in**0.5 / norms[0].clamp_min(1e-12)).float()
    run.out_scale = (c.d_out**0.5 / norms[1].clamp_min(1e-12)).float()
    run.tc.initialize(torch.Generator().manual_seed(cfg.seed), threshold=cfg.jumprelu_threshold_init)
    mean_out = _all_sum(y.double().sum(1), world) / rows
    run.tc.b_dec.copy_(mean_out * run.out_scale[:, None])


def _step(
    run: _Run,
    x: torch.Tensor,
    y: torch.Tensor,
    step: int,
    steps: int,
    cfg: TranscoderTrainConfig,
    world: World,
    on_log: OnLog | None,
    t0: float,
) -> None:
    for group in run.optim.param_groups:
        group["lr"] = cfg.lr_at(step, steps)
    out = step_loss(run.tc, x, y, cfg.sparsity_at(step), cfg.bandwidth)
    run.optim.zero_grad(set_to_none=True)
    out.loss.backward()
    if world.size > 1:
        for p in run.tc.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad.div_(world.size)
    run.optim.step()
    if run.tc.threshold is not None:
        with torch.no_grad():
            run.tc.threshold.clamp_(min=0.0)
    fired = _all_sum(out.fired.clone(), world)
    run.last_fired[fired > 0] = step + 1
    if (step + 1) % cfg.log_every == 0 or step + 1 == steps:
        entry = _metrics(run, out.squared_error, x, y, fired, out.loss.detach(), step, steps, cfg, world, t0)
        run.history.append(entry)
        if on_log is not None and world.is_main:
            on_log(entry)


@torch.no_grad()
def _metrics(
    run: _Run,
    squared_error: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    fired: torch.Tensor,
    loss: torch.Tensor,
    step: int,
    steps: int,
    cfg: TranscoderTrainConfig,
    world: World,
    t0: float,
) -> dict[str, float]:
    var = (y - y.mean(1, keepdim=True)).pow(2).sum((1, 2))
    rows = float(_all_sum(torch.tensor(float(x.shape[1])), world))
    sums = _all_sum(torch.cat([squared_error, var, loss.reshape(1) * x.shape[1]]).double(), world)
    n = len(run.tc.layers)
    fvu = sums[:n] / sums[n : 2 * n].clamp_min(1e-12)
    window = max(1, cfg.dead_after_tokens // int(rows))
    dead = (step + 1 - run.last_fired) >= window
    return {
        "step": float(step + 1),
        "loss": float(sums[-1] / rows),
        "fvu": float(fvu.mean()),
        "l0": float(fired.sum() / rows / n),
        "dead_fraction": float(dead.float().mean()),
        "lr": cfg.lr_at(step, steps),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _checkpoint(run: _Run, folder: Path, step: int, cfg: TranscoderTrainConfig) -> None:
    tensors = checkpoint_tensors(run.tc, run.optim, run.last_fired)
    tensors["trainer.in_scale"], tensors["trainer.out_scale"] = run.in_scale, run.out_scale
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "step": step,
        "train_config": cfg.to_dict(),
        "transcoder_config": run.tc.cfg.to_dict(),
        "history": run.history,
        "source": run.source,
    }
    write_checkpoint(folder, step, tensors, payload)


def _resume(run: _Run, folder: Path) -> None:
    """Restore the newest checkpoint in ``folder`` (its settings were checked by ``_refuse_other_run``)."""
    ckpts = checkpoint_folders(folder) if folder.is_dir() else []
    if not ckpts:
        return
    meta = _read_meta(ckpts[0])
    if meta.get("source") != run.source:
        raise TranscoderConfigError(
            f"{folder} holds a run trained on another corpus or model ({meta.get('source')}); give the same corpus "
            "to resume it, or a new output folder (nothing was changed)"
        )
    path = ckpts[0] / "state.safetensors"
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise TranscoderFormatError(
            f"{path} is damaged ({err}); delete {ckpts[0]} to resume from an earlier one"
        ) from err
    run.last_fired = restore_tensors(run.tc, run.optim, tensors)
    run.in_scale, run.out_scale = tensors["trainer.in_scale"], tensors["trainer.out_scale"]
    run.start, run.history = int(meta["step"]), list(meta["history"])
