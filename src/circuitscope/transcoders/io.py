"""Transcoder folders in circuitscope's format: ``transcoders.json`` + ``transcoders.safetensors``.

``transcoders.json`` holds the format name and version, the :class:`TranscoderConfig` (with the
model's fingerprint) and free-form metadata (how the set was trained); the safetensors file holds
the set's state dict (``W_enc``, ``b_enc``, ``W_dec.<i>``, ``b_dec``, ``threshold``, ``W_skip``).
Both are written atomically, weights first, so a folder holds the previous set or the new one,
never half of one. Reading refuses a newer format version, a damaged file, tensors that do not
match the configuration and (given ``model``) transcoders of another model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from circuitscope.core.files import atomic_write_json, read_json_object, require_fields
from circuitscope.errors import CircuitscopeError
from circuitscope.sae.io import atomic_save_tensors
from circuitscope.transcoders.errors import TranscoderFormatError
from circuitscope.transcoders.modules import TranscoderConfig, TranscoderSet

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["CONFIG_FILENAME", "FORMAT", "FORMAT_VERSION", "WEIGHTS_FILENAME", "load_transcoders", "save_transcoders"]

CONFIG_FILENAME = "transcoders.json"
WEIGHTS_FILENAME = "transcoders.safetensors"
FORMAT = "circuitscope.transcoders"
FORMAT_VERSION = 1


def save_transcoders(
    transcoders: TranscoderSet, folder: str | os.PathLike[str], metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``transcoders`` to ``folder`` (created): weights first, then the configuration, each atomically."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu() for k, v in transcoders.state_dict().items()}
    atomic_save_tensors(tensors, target / WEIGHTS_FILENAME, metadata={"format": "pt"})
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": transcoders.cfg.to_dict(),
        "metadata": metadata or {},
    }
    atomic_write_json(target / CONFIG_FILENAME, payload, indent=2)
    return target


def read_transcoder_config(folder: str | os.PathLike[str]) -> tuple[TranscoderConfig, dict[str, Any]]:
    """The configuration and metadata of the transcoder folder ``folder`` (refusing other or newer formats)."""
    path = Path(folder)
    cfg_path = path / CONFIG_FILENAME
    if not cfg_path.is_file():
        raise TranscoderFormatError(
            f"{path} has no {CONFIG_FILENAME}; a transcoder folder holds {CONFIG_FILENAME} and {WEIGHTS_FILENAME} "
            "(write one with save_transcoders or circuitscope transcoders train)"
        )
    raw = read_json_object(cfg_path, TranscoderFormatError)
    require_fields(cfg_path, raw, {"format": str, "format_version": int, "config": dict}, TranscoderFormatError)
    if raw["format"] != FORMAT:
        raise TranscoderFormatError(f"{cfg_path} is a {raw['format']!r} file, not {FORMAT!r}")
    if raw["format_version"] > FORMAT_VERSION:
        raise TranscoderFormatError(
            f"{cfg_path} has format version {raw['format_version']}, newer than this circuitscope reads "
            f"({FORMAT_VERSION}); upgrade circuitscope to read it"
        )
    try:
        cfg = TranscoderConfig.from_dict(raw["config"])
    except CircuitscopeError as err:
        raise TranscoderFormatError(f"{cfg_path} has an invalid configuration ({err}); the file is damaged") from err
    except (TypeError, ValueError) as err:
        raise TranscoderFormatError(f"{cfg_path} has a configuration that does not load ({err})") from err
    metadata = raw.get("metadata")
    return cfg, metadata if isinstance(metadata, dict) else {}


def load_transcoders(
    folder: str | os.PathLike[str], model: HookedModel | None = None, device: str | torch.device = "cpu"
) -> TranscoderSet:
    """Read a folder written by :func:`save_transcoders`; with ``model``, refuse transcoders of another model."""
    path = Path(folder)
    cfg, _ = read_transcoder_config(path)
    weights = path / WEIGHTS_FILENAME
    try:
        tensors = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise TranscoderFormatError(
            f"{weights} is not a readable safetensors file ({err}); the file is damaged"
        ) from err
    transcoders = TranscoderSet(cfg).to(device)
    expected = transcoders.state_dict()
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise TranscoderFormatError(f"{weights} lacks the tensors {', '.join(missing)}; the folder is damaged")
    for name, value in expected.items():
        if tensors[name].shape != value.shape:
            raise TranscoderFormatError(
                f"{weights}: {name} has shape {tuple(tensors[name].shape)}, but {CONFIG_FILENAME} implies "
                f"{tuple(value.shape)}; the folder is damaged"
            )
        if not bool(torch.isfinite(tensors[name]).all()):
            raise TranscoderFormatError(
                f"{weights}: {name} has NaN or infinite entries; the transcoders are damaged (or their training "
                "diverged): retrain them"
            )
    transcoders.load_state_dict({name: tensors[name] for name in expected})
    if model is not None:
        transcoders.check(model)
    return transcoders
