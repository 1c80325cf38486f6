"""SAE training checkpoints: ``checkpoints/step_XXXXXXXX/{state.safetensors, trainer.json}``, whole or absent.

``state.safetensors`` holds the SAE's weights, Adam's moments and the dead-latent counters; ``trainer.json``
the step, the input scale, the metric history and the :class:`~circuitscope.sae.train_config.TrainConfig`.
A checkpoint folder is written as ``step_XXXXXXXX.partial`` and renamed once complete. :func:`resume_checkpoint`
skips damaged checkpoints (with a :class:`~circuitscope.errors.DamagedCheckpointWarning`) for the newest
intact one, and refuses when every checkpoint is damaged.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from circuitscope.core.files import atomic_write_json, read_json_object, require_fields
from circuitscope.errors import DamagedCheckpointWarning
from circuitscope.sae.base import SAE
from circuitscope.sae.errors import SAEConfigError, SAEFormatError
from circuitscope.sae.io import atomic_save_tensors
from circuitscope.sae.train_config import TrainConfig

__all__ = [
    "CHECKPOINT_VERSION",
    "checkpoint_folders",
    "checkpoint_tensors",
    "restore_tensors",
    "resume_checkpoint",
    "save_checkpoint",
    "write_checkpoint",
]

CHECKPOINT_VERSION = 1
_STEP_NAME = re.compile(r"step_(\d{8,})")


def checkpoint_tensors(
    sae: nn.Module, optim: torch.optim.Optimizer, last_fired: torch.Tensor
) -> dict[str, torch.Tensor]:
    """A module's weights (``sae.*``), its Adam moments (``optim.<param>.<key>``) and ``trainer.last_fired``."""
    tensors = {f"sae.{k}": v for k, v in sae.state_dict().items()}
    params = dict(sae.named_parameters())
    by_id = {id(p): n for n, p in params.items()}
    for p, state in optim.state.items():
        name = by_id[id(p)]
        for key, value in state.items():
            tensors[f"optim.{name}.{key}"] = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    tensors["trainer.last_fired"] = last_fired
    return tensors


def restore_tensors(sae: nn.Module, optim: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """The inverse of :func:`checkpoint_tensors`: weights and Adam moments restored; ``last_fired`` returned."""
    sae.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("sae.")})
    params = dict(sae.named_parameters())
    for name, p in params.items():
        state = {k.rsplit(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"optim.{name}.")}
        if state:
            optim.state[p] = state
    return tensors["trainer.last_fired"]


def checkpoint_folders(folder: Path) -> list[Path]:
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
    meta = read_json_object(path, _DamagedCheckpointError)
    kinds = {"step": int, "scale": (int, float), "train_config": dict, "history": list}
    require_fields(path, meta, kinds, _DamagedCheckpointError)
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


def resume_checkpoint(
    folder: Path, cfg: TrainConfig, sae: SAE, optim: torch.optim.Optimizer, source: dict[str, Any]
) -> tuple[int, float, list[dict[str, float]], torch.Tensor] | None:
    """Restore the newest intact checkpoint in ``folder``: (step, scale, history, last_fired), or None if none.

    ``source`` is the training store's :attr:`~circuitscope.sae.store.ActivationStore.source` (model, its
    weights' fingerprint, hook, width): a run begun on a store of another model or hook is refused.

    Damaged checkpoints are skipped with a :class:`DamagedCheckpointWarning` naming them; if every
    checkpoint is damaged the run is refused (a fresh start would overwrite them).
    """
    damaged: list[str] = []
    for ckpt in checkpoint_folders(folder):
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
            _check_source(folder, meta.get("source"), source)
            tensors = _read_state_tensors(ckpt)
        except _DamagedCheckpointError as err:
            damaged.append(str(err))
            continue
        last_fired = restore_tensors(sae, optim, tensors)
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


def _check_source(folder: Path, saved: Any, source: dict[str, Any]) -> None:
    if not isinstance(saved, dict):
        return  # a checkpoint of an older circuitscope: it did not record its store
    differ = [k for k in source if saved.get(k) != source[k]]
    if differ:
        what = ", ".join(f"{k}={saved.get(k)!r}, not {source[k]!r}" for k in differ)
        raise SAEConfigError(
            f"{folder} holds a run trained on activations of another model or hook ({what}); give the store that run "
            "was trained on, or a new --out folder (nothing was changed)"
        )


def save_checkpoint(
    folder: Path,
    step: int,
    cfg: TrainConfig,
    sae: SAE,
    optim: torch.optim.Optimizer,
    last_fired: torch.Tensor,
    scale: float,
    history: list[dict[str, float]],
    source: dict[str, Any],
) -> None:
    payload = {
        "format": "circuitscope.sae_checkpoint",
        "version": CHECKPOINT_VERSION,
        "step": step,
        "scale": scale,
        "train_config": asdict(cfg),
        "sae_config": sae.cfg.to_dict(),
        "history": history,
        "source": source,
    }
    write_checkpoint(folder, step, checkpoint_tensors(sae, optim, last_fired), payload)


def write_checkpoint(folder: Path, step: int, tensors: dict[str, torch.Tensor], payload: dict[str, Any]) -> None:
    """``folder/checkpoints/step_XXXXXXXX/{state.safetensors, trainer.json}``, written whole or not at all."""
    target = folder / "checkpoints" / f"step_{step:08d}"
    partial = target.with_name(target.name + ".partial")  # renamed once complete: a crash leaves no half checkpoint
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    atomic_save_tensors(tensors, partial / "state.safetensors")
    atomic_write_json(partial / "trainer.json", payload, indent=2)
    if target.exists():
        shutil.rmtree(target)
    os.replace(partial, target)
