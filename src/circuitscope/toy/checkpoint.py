"""Training checkpoints on disk: safetensors for tensors, JSON for everything else, versioned, atomic.

A run folder looks like::

    run.json                         {"format": "circuitscope.toy.run", "version": 1, "identity": {...}}
    checkpoints/step_000500/
        model.safetensors            the model's state_dict
        optimizer.safetensors        AdamW moments (kept for the latest checkpoint only)
        state.json                   step, loss history, metric history

``identity`` is everything that defines the run (model config, training config, task); a folder
whose identity differs from the run being started is refused with :class:`CheckpointError`
rather than silently mixed. Every file is written to a temporary name, then renamed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from circuitscope.toy.errors import CheckpointError

__all__ = [
    "FORMAT_VERSION",
    "check_run_folder",
    "checkpoint_steps_on_disk",
    "load_checkpoint",
    "load_model_weights",
    "save_checkpoint",
]

FORMAT_VERSION = 1
RUN_FORMAT = "circuitscope.toy.run"


def _write_json(path: Path, payload: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=1, allow_nan=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += _diff(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')}: folder has {a!r}, this run has {b!r}"]


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
    payload = json.loads(run_file.read_text(encoding="utf-8"))
    if payload.get("format") != RUN_FORMAT:
        raise CheckpointError(f"{run_file} is not a circuitscope toy run (format {payload.get('format')!r})")
    if int(payload.get("version", -1)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{run_file} has format version {payload['version']}, newer than this circuitscope "
            f"({FORMAT_VERSION}); upgrade circuitscope to resume it"
        )
    differences = _diff(payload.get("identity"), identity)
    if differences:
        raise CheckpointError(
            f"the checkpoint folder {folder} belongs to a run of another configuration: "
            + "; ".join(differences[:6])
            + ". Use another --out folder, or the same configuration to resume."
        )


def _step_dir(folder: Path, step: int) -> Path:
    return folder / "checkpoints" / f"step_{step:07d}"


def checkpoint_steps_on_disk(folder: Path, resumable: bool = False) -> list[int]:
    """Steps with a complete checkpoint, in order (``resumable``: only those with optimizer state)."""
    root = folder / "checkpoints"
    if not root.exists():
        return []
    steps = []
    for child in root.iterdir():
        complete = (child / "state.json").exists() and (not resumable or (child / "optimizer.safetensors").exists())
        if child.name.startswith("step_") and not child.name.endswith(".partial") and complete:
            steps.append(int(child.name.removeprefix("step_")))
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
    """Write one checkpoint; the optimizer state of older checkpoints is removed (weights are kept)."""
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
    for other in checkpoint_steps_on_disk(folder):
        if other < step:
            (_step_dir(folder, other) / "optimizer.safetensors").unlink(missing_ok=True)
    return target


def load_model_weights(folder: Path, step: int) -> dict[str, torch.Tensor]:
    """The model state_dict saved at ``step`` (for analysing a checkpoint)."""
    path = _step_dir(folder, step) / "model.safetensors"
    if not path.exists():
        raise CheckpointError(
            f"no model weights for step {step} in {folder}; steps on disk: {checkpoint_steps_on_disk(folder)}"
        )
    return load_file(str(path))


def load_checkpoint(
    folder: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Restore model and optimizer in place from the checkpoint at ``step``; returns its ``state.json``."""
    directory = _step_dir(folder, step)
    state = json.loads((directory / "state.json").read_text(encoding="utf-8"))
    if int(state.get("version", -1)) > FORMAT_VERSION:
        raise CheckpointError(f"{directory} has format version {state['version']}; upgrade circuitscope to read it")
    opt_path = directory / "optimizer.safetensors"
    if not opt_path.exists():
        raise CheckpointError(f"{directory} has no optimizer state (only the latest checkpoint keeps it)")
    weights = load_file(str(directory / "model.safetensors"))
    missing = set(model.state_dict()) ^ set(weights)
    if missing:
        raise CheckpointError(f"{directory} does not match the model: parameters {sorted(missing)[:5]} differ")
    model.load_state_dict(weights)
    flat = load_file(str(opt_path))
    reference = optimizer.state_dict()
    states: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        index, name = key.split(".", 1)
        states.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": states, "param_groups": reference["param_groups"]})
    return state
