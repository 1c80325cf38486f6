"""A fine-tuned model as a Hugging Face folder that :func:`circuitscope.load_model` opens, with its record.

The folder holds the model (``config.json`` and safetensors, LoRA already merged), its tokenizer,
``finetune.json`` (format, version, the configuration, the corpus, the losses and both models'
fingerprints) and ``heldout.safetensors`` (the held-out contexts, for the rewiring study). The
weights go into a fresh model of the same configuration first
(:func:`~circuitscope.core.loading.dequantized_copy`: a GGUF-loaded model refuses
``save_pretrained``). The folder is written under a temporary name beside it and renamed into place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from circuitscope.core.files import atomic_write_json, read_json_object, require_fields
from circuitscope.core.loading import dequantized_copy
from circuitscope.finetune.errors import FinetuneError
from circuitscope.finetune.train import FinetuneResult

__all__ = ["RECORD", "FinetuneRecord", "read_record", "save_finetuned"]

RECORD = "finetune.json"
FORMAT = "circuitscope.finetune"
VERSION = 1
_HELDOUT = "heldout.safetensors"


def save_finetuned(result: FinetuneResult, folder: str | Path) -> Path:
    """Write ``result``'s model, tokenizer and record to ``folder`` (replaced if it exists); returns it."""
    target = Path(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tmp.chmod(0o755)
        hf = result.model.hf_model
        dequantized_copy(hf, next(hf.parameters()).dtype).save_pretrained(tmp, safe_serialization=True)
        if result.model.tokenizer is not None:
            result.model.tokenizer.save_pretrained(tmp)
        save_file({"heldout": result.heldout.contiguous()}, str(tmp / _HELDOUT))
        atomic_write_json(tmp / RECORD, {"format": FORMAT, "version": VERSION, **result.to_json()}, indent=1)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@dataclass(frozen=True)
class FinetuneRecord:
    """What ``finetune.json`` and ``heldout.safetensors`` of a fine-tuned folder say."""

    payload: dict[str, Any]
    """``finetune.json`` as written."""
    heldout: torch.Tensor
    """The held-out contexts of the fine-tuning corpus (token ids)."""

    @property
    def base_fingerprint(self) -> str:
        return str(self.payload["base_fingerprint"])


def read_record(folder: str | Path) -> FinetuneRecord | None:
    """The record of a folder written by :func:`save_finetuned`; None for any other model folder."""
    path = Path(folder) / RECORD
    if not path.is_file():
        return None
    payload = read_json_object(path, FinetuneError)
    if payload.get("format") != FORMAT or not isinstance(payload.get("version"), int):
        raise FinetuneError(f"{path} is not a circuitscope fine-tuning record (format {payload.get('format')!r})")
    if payload["version"] > VERSION:
        raise FinetuneError(f"{path} has format version {payload['version']}; upgrade circuitscope to read it")
    require_fields(path, payload, {"base_fingerprint": str, "config": dict, "data": dict}, FinetuneError)
    try:
        heldout = load_file(str(Path(folder) / _HELDOUT))["heldout"]
    except (SafetensorError, OSError, KeyError) as err:
        raise FinetuneError(f"{Path(folder) / _HELDOUT} is missing or damaged ({err}); fine-tune again") from err
    return FinetuneRecord(payload, heldout)
