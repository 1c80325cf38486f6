"""Training checkpoints on disk: safetensors for tensors, JSON for everything else, versioned, atomic.

A run folder looks like::

    run.json                         {"format": "circuitscope.toy.run", "version": 1, "identity": {...}}
    checkpoints/step_000500/
        model.safetensors            the model's state_dict
        optimizer.safetensors        AdamW moments (kept for the two latest checkpoints only)
        state.json                   step, loss history, metric history

``identity`` is everything that defines the run (model config, training config, task); a folder
whose identity differs from the run being started is refused with :class:`CheckpointError`
rather than silently mixed. Every file is written to a temporary name, then renamed, and a
checkpoint folder is written as ``step_XXXXXXX.partial`` and renamed when complete, so a crash
leaves the previous checkpoints as they were. :func:`resume_checkpoint` skips a damaged checkpoint
(a truncated or unreadable file, named in a :class:`~circuitscope.errors.DamagedCheckpointWarning`)
for the newest intact one, and refuses when every resumable checkpoint is damaged. Folders in
``checkpoints/`` not named ``step_XXXXXXX`` are ignored.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from circuitscope.core.files import atomic_write, atomic_write_json, read_json_object, require_fields
from circuitscope.errors import DamagedCheckpointWarning
from circuitscope.toy.errors import CheckpointError

__all__ = [
    "FORMAT_VERSION",
    "DamagedCheckpointError",
    "check_run_folder",
    "checkpoint_steps_on_disk",
    "load_checkpoint",
    "load_model_weights",
    "resume_checkpoint",
    "save_checkpoint",
]

FORMAT_VERSION = 1
RUN_FORMAT = "circuitscope.toy.run"
KEEP_OPTIMIZER = 2
"""Checkpoints that keep their AdamW state: the latest, and one to fall back on if it is damaged."""
_STEP_NAME = re.compile(r"step_(\d{7,})")


class DamagedCheckpointError(CheckpointError):
    """A checkpoint file that cannot be read: truncated, not JSON, not safetensors, or missing fields."""


def _write_json(path: Path, payload: Any) -> None:
    atomic_write_json(path, payload, shared=False, indent=1, allow_nan=False)


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    cpu = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(cpu, tmp, metadata=meta), shared=False)


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += _diff(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')}: folder has {a!r}, this run has {b!r}"]


def _read_run_file(run_file: Path) -> dict[str, Any]:
    """``run.json`` as written by :func:`check_run_folder`; a damaged one is refused, naming it."""
    try:
        payload = json.loads(run_file.read_text(encoding="utf-8"))
        problem = "" if isinstance(payload, dict) else "not a JSON object"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        payload, problem = {}, f"not valid JSON: {err}"
    fields_ok = isinstance(payload.get("version"), int) and isinstance(payload.get("identity"), dict)
    if not problem and payload.get("format") == RUN_FORMAT and not fields_ok:
        problem = "no integer 'version' or no 'identity' object"
    if problem:
        raise DamagedCheckpointError(
            f"{run_file} is damaged ({problem}). It records which configuration the checkpoints in "
            f"{run_file.parent} belong to, so they cannot be resumed safely. Restore that file, or delete (or move "
            f"away) {run_file.parent} to start over, or use another --out folder"
        )
    return payload


def check_run_folder(folder: Path, identity: dict[str, Any]) -> None:
    """Create ``run.json`` in a new folder, or check that an existing one describes the same run."""
    folder.mkdir(parents=True, exist_ok=True)
    run_file = folder / "run.json"
    identity = json.loads(json.dumps(identity))  # normalise tuples to lists, as on disk
    if not run_file.exists():
        if (folder / "checkpoints").exists():
            raise CheckpointError(f"{folder} has checkpoints but no run.json; it was not written by this trainer")
        _write_json(run_file, {"format": RUN_FORMAT, "version": FORMAT_VERSION, "identity": identity})
        return
    payload = _read_run_file(run_file)
    if payload.get("format") != RUN_FORMAT:
        raise CheckpointError(f"{run_file} is not a circuitscope toy run (format {payload.get('format')!r})")
    if payload["version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{run_file} has format version {payload['version']}, newer than this circuitscope "
            f"({FORMAT_VERSION}); upgrade circuitscope to resume it"
        )
    differences = _diff(payload["identity"], identity)
    if differences:
        raise CheckpointError(
            f"the checkpoint folder {folder} belongs to a run of another configuration: "
            + "; ".join(differences[:6])
            + ". Use another --out folder, or the same configuration to resume."
        )


def _step_dir(folder: Path, step: int) -> Path:
    return folder / "checkpoints" / f"step_{step:07d}"


def checkpoint_steps_on_disk(folder: Path, resumable: bool = False) -> list[int]:
    """Steps with a complete checkpoint, in order (``resumable``: only those with optimizer state).

    Only folders named as :func:`save_checkpoint` names them count: ``notes/``, ``step_abc/`` or an
    unfinished ``step_0000500.partial/`` are ignored.
    """
    root = folder / "checkpoints"
    if not root.is_dir():
        return []
    steps = []
    for child in root.iterdir():
        match = _STEP_NAME.fullmatch(child.name)
        if match is None or child != _step_dir(folder, int(match.group(1))) or not child.is_dir():
            continue
        complete = (child / "state.json").is_file() and (not resumable or (child / "optimizer.safetensors").is_file())
        if complete:
            steps.append(int(match.group(1)))
    return sorted(steps)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            out[f"{index}.{key}"] = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    return out


def save_checkpoint(
    folder: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
) -> Path:
    """Write one checkpoint; the optimizer state of all but the :data:`KEEP_OPTIMIZER` latest is removed."""
    target = _step_dir(folder, step)
    tmp = target.with_name(target.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    meta = {"format": "circuitscope.toy.checkpoint", "version": str(FORMAT_VERSION), "step": str(step)}
    _write_tensors(tmp / "model.safetensors", dict(model.state_dict()), meta)
    _write_tensors(tmp / "optimizer.safetensors", _optimizer_tensors(optimizer), meta)
    _write_json(tmp / "state.json", {"version": FORMAT_VERSION, "step": step, **state})
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    older = [other for other in checkpoint_steps_on_disk(folder, resumable=True) if other < step]
    for other in older[: max(0, len(older) - (KEEP_OPTIMIZER - 1))]:
        (_step_dir(folder, other) / "optimizer.safetensors").unlink(missing_ok=True)
    return target


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise DamagedCheckpointError(f"{path} is damaged (not a readable safetensors file: {err})") from err


def _read_state(directory: Path, step: int) -> dict[str, Any]:
    path = directory / "state.json"
    state = read_json_object(path, DamagedCheckpointError)
    if not isinstance(state.get("version"), int):
        raise DamagedCheckpointError(f"{path} is damaged (no integer 'version')")
    if state["version"] > FORMAT_VERSION:
        raise CheckpointError(f"{directory} has format version {state['version']}; upgrade circuitscope to read it")
    kinds = {"step": int, "loss": list, "metric_steps": list, "metrics": dict}
    require_fields(path, state, kinds, DamagedCheckpointError)
    if state["step"] != step:
        raise DamagedCheckpointError(f"{path} is damaged (it says step {state['step']}, its folder says {step})")
    return state


def load_model_weights(folder: Path, step: int) -> dict[str, torch.Tensor]:
    """The model state_dict saved at ``step`` (for analysing a checkpoint)."""
    path = _step_dir(folder, step) / "model.safetensors"
    if not path.exists():
        raise CheckpointError(
            f"no model weights for step {step} in {folder}; steps on disk: {checkpoint_steps_on_disk(folder)}"
        )
    return _read_tensors(path)


def load_checkpoint(
    folder: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Restore model and optimizer in place from the checkpoint at ``step``; returns its ``state.json``.

    Every file is read and checked before anything is changed: a damaged file raises
    :class:`DamagedCheckpointError` naming it, and leaves ``model`` and ``optimizer`` as they were.
    """
    directory = _step_dir(folder, step)
    state = _read_state(directory, step)
    opt_path = directory / "optimizer.safetensors"
    if not opt_path.exists():
        raise CheckpointError(f"{directory} has no optimizer state (only the latest checkpoints keep it)")
    weights = _read_tensors(directory / "model.safetensors")
    missing = set(model.state_dict()) ^ set(weights)
    if missing:
        raise CheckpointError(f"{directory} does not match the model: parameters {sorted(missing)[:5]} differ")
    flat = _read_tensors(opt_path)
    states: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        index, _, name = key.partition(".")
        if not index.isdigit() or not name:
            raise DamagedCheckpointError(f"{opt_path} is damaged (unexpected tensor {key!r})")
        states.setdefault(int(index), {})[name] = value
    model.load_state_dict(weights)
    optimizer.load_state_dict({"state": states, "param_groups": optimizer.state_dict()["param_groups"]})
    return state


def resume_checkpoint(
    folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, max_step: int
) -> dict[str, Any] | None:
    """Restore the newest intact resumable checkpoint at or before ``max_step``; None if there is none.

    Damaged checkpoints are skipped with a :class:`~circuitscope.errors.DamagedCheckpointWarning`
    naming their files and the checkpoint used instead. If every resumable checkpoint is damaged,
    :class:`DamagedCheckpointError` names them: starting afresh would silently discard the run.
    """
    damaged: list[str] = []
    for step in reversed([s for s in checkpoint_steps_on_disk(folder, resumable=True) if s <= max_step]):
        try:
            state = load_checkpoint(folder, step, model, optimizer)
        except DamagedCheckpointError as err:
            damaged.append(str(err))
            continue
        if damaged:
            warnings.warn(
                DamagedCheckpointWarning(
                    f"skipped damaged checkpoints ({'; '.join(damaged)}); resuming from the newest intact one, "
                    f"step {step} ({_step_dir(folder, step)}); the later steps are trained again"
                ),
                stacklevel=3,
            )
        return state
    if damaged:
        raise DamagedCheckpointError(
            f"no intact checkpoint to resume in {folder}: {'; '.join(damaged)}. Nothing was changed. To start over, "
            f"delete (or move away) {folder} and run again, or use another --out folder"
        )
    return None
