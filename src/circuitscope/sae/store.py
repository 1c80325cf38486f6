"""Activation store: a hook's activations over a corpus, as sharded safetensors with a versioned JSON manifest.

Layout of a store folder::

    manifest.json              format, version, model, hook, dtype, context size, corpus and its hash,
                               and the list of complete shards (file, tokens, contexts, sha256)
    shard_00000.safetensors    "activations" [tokens, d_in] and "tokens" [tokens] (the token at each row)

Collection (:mod:`circuitscope.sae.collect`) writes each shard to a temporary name, renames it,
and only then lists it in the manifest (also written atomically), so a listed shard is a whole one.

Reading (:meth:`ActivationStore.batches`) is a shuffled, batched stream with bounded memory: each
epoch visits the shards in a seeded random order, ``shards_in_memory`` at a time, and shuffles the
rows of those shards together. The stream is a pure function of ``(seed, batch index)``, so a
resumed training run sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from circuitscope.core.files import atomic_write_json
from circuitscope.engine.batching import batch_slices, batched
from circuitscope.sae.errors import ActivationStoreError, SAEConfigError
from circuitscope.sae.io import atomic_save_tensors

__all__ = [
    "MANIFEST",
    "STORE_DTYPES",
    "STORE_FORMAT",
    "STORE_VERSION",
    "ActivationStore",
    "check_manifest",
    "file_sha256",
    "shard_problem",
    "write_store",
]

MANIFEST = "manifest.json"
STORE_FORMAT = "circuitscope.activations"
STORE_VERSION = 1
STORE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def shard_problem(folder: Path, entry: dict[str, Any], d_in: int, full: bool) -> str | None:
    """None if the shard matches its manifest entry, else what is wrong."""
    path = folder / str(entry.get("file", ""))
    if not path.is_file():
        return f"{path.name} is missing"
    try:
        with safe_open(str(path), framework="pt") as handle:
            keys = set(handle.keys())
            if not {"activations", "tokens"} <= keys:
                return f"{path.name} lacks 'activations' or 'tokens'"
            shape = tuple(handle.get_slice("activations").get_shape())
    except (SafetensorError, OSError, ValueError) as err:
        return f"{path.name} is not a readable safetensors file ({err})"
    if shape != (int(entry["n_tokens"]), d_in):
        return f"{path.name} holds activations of shape {shape}, the manifest says ({entry['n_tokens']}, {d_in})"
    if full and file_sha256(path) != entry.get("sha256"):
        return f"{path.name} does not match its sha256 in the manifest (the file is corrupt)"
    return None


_MANIFEST_FIELDS: dict[str, type | tuple[type, ...]] = {"model": str, "hook": str, "d_in": int, "shards": list}
_SHARD_FIELDS: dict[str, type | tuple[type, ...]] = {"file": str, "n_tokens": int, "contexts": list}


def check_manifest(manifest: Any, path: Path) -> None:
    """Refuse a manifest without the fields readers rely on, naming the file and the fields."""
    if not isinstance(manifest, dict):
        raise ActivationStoreError(f"{path} is not a circuitscope activation manifest (not a JSON object)")
    wrong = [k for k, kind in _MANIFEST_FIELDS.items() if not isinstance(manifest.get(k), kind)]
    shards = manifest.get("shards")
    for i, entry in enumerate(shards if isinstance(shards, list) else []):
        if not isinstance(entry, dict):
            wrong.append(f"shards[{i}]")
            continue
        wrong += [f"shards[{i}].{k}" for k, kind in _SHARD_FIELDS.items() if not isinstance(entry.get(k), kind)]
    if wrong:
        raise ActivationStoreError(
            f"{path} is damaged: missing or mistyped {', '.join(wrong[:6])}. Collect the activations again into a "
            f"new folder, or move {path.name} away and run the same collect command on {path.parent}"
        )


class ActivationStore:
    """A collected activation folder: its manifest, and batches read from its shards."""

    def __init__(self, folder: str | os.PathLike[str], verify: bool = False) -> None:
        self.folder = Path(folder)
        path = self.folder / MANIFEST
        if not path.is_file():
            raise ActivationStoreError(
                f"{self.folder} has no {MANIFEST}; collect activations first (circuitscope sae collect --out ...)"
            )
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ActivationStoreError(f"{path} is not valid JSON ({err})") from err
        if not isinstance(manifest, dict) or manifest.get("format") != STORE_FORMAT:
            raise ActivationStoreError(f"{path} is not a circuitscope activation manifest")
        if manifest.get("version") != STORE_VERSION:
            raise ActivationStoreError(
                f"{path} has format version {manifest.get('version')}, this circuitscope reads version {STORE_VERSION}"
            )
        check_manifest(manifest, path)
        self.manifest: dict[str, Any] = manifest
        self.d_in = int(manifest["d_in"])
        for entry in self.shards:
            problem = shard_problem(self.folder, entry, self.d_in, full=verify)
            if problem:
                raise ActivationStoreError(
                    f"{self.folder}: {problem}. Run the same collect command again on this folder: it keeps the good "
                    "shards and re-collects from the first bad one."
                )
        if not self.shards:
            raise ActivationStoreError(f"{self.folder} has no complete shard yet; run collect (it resumes)")

    def __repr__(self) -> str:
        return f"ActivationStore({self.folder}, {self.n_tokens} x {self.d_in}, hook={self.hook!r})"

    @property
    def shards(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("shards", []))

    @property
    def n_tokens(self) -> int:
        return sum(int(s["n_tokens"]) for s in self.shards)

    @property
    def hook(self) -> str:
        return str(self.manifest["hook"])

    @property
    def model_name(self) -> str:
        return str(self.manifest["model"])

    @property
    def source(self) -> dict[str, Any]:
        """What the activations are of: model (name and weights' fingerprint, '' if unknown), hook and width."""
        fingerprint = str(self.manifest.get("model_fingerprint", ""))
        return {"model": self.model_name, "model_fingerprint": fingerprint, "hook": self.hook, "d_in": self.d_in}

    def load_shard(self, i: int) -> tuple[Float[torch.Tensor, "tokens d_in"], Int[torch.Tensor, " tokens"]]:
        """Activations (as float32) and token ids of shard ``i``."""
        path = self.folder / self.shards[i]["file"]
        try:
            data = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise ActivationStoreError(f"{path} cannot be read ({err}); re-run collect on {self.folder}") from err
        return data["activations"].float(), data["tokens"]

    def sample(self, n: int, seed: int = 0) -> Float[torch.Tensor, "n d_in"]:
        """``n`` rows drawn from the first shards (for normalisation and decoder-bias initialisation)."""
        rows: list[torch.Tensor] = []
        got = 0
        for i in range(len(self.shards)):
            acts, _ = self.load_shard(i)
            rows.append(acts)
            got += acts.shape[0]
            if got >= n:
                break
        data = torch.cat(rows)
        idx = torch.randperm(data.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
        return data[idx]

    def _groups(self, epoch: int, seed: int, shards_in_memory: int) -> list[list[int]]:
        order = torch.randperm(len(self.shards), generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        ids = order.tolist()
        return batched(ids, shards_in_memory)

    def batches_per_epoch(self, batch_size: int, shards_in_memory: int = 8, seed: int = 0) -> int:
        return sum(
            sum(int(self.shards[i]["n_tokens"]) for i in g) // batch_size
            for g in self._groups(0, seed, shards_in_memory)
        )

    def batches(
        self, batch_size: int, seed: int = 0, start: int = 0, shards_in_memory: int = 8
    ) -> Iterator[Float[torch.Tensor, "batch d_in"]]:
        """An endless shuffled stream of batches, beginning at batch index ``start``.

        Rows left over at the end of a group of shards are dropped, so every batch has
        ``batch_size`` rows and batch ``i`` depends only on ``(seed, i)``.
        """
        if batch_size <= 0 or shards_in_memory <= 0:
            raise SAEConfigError("batch_size and shards_in_memory must be positive")
        index = 0
        epoch = 0
        while True:
            produced = 0
            for g, group in enumerate(self._groups(epoch, seed, shards_in_memory)):
                n_rows = sum(int(self.shards[i]["n_tokens"]) for i in group)
                n_batches = n_rows // batch_size
                produced += n_batches
                if index + n_batches <= start:  # skip a whole group without reading it
                    index += n_batches
                    continue
                data = torch.cat([self.load_shard(i)[0] for i in group])
                gen = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 10_007 + g)
                data = data[torch.randperm(data.shape[0], generator=gen)]
                for rows in batch_slices(n_batches * batch_size, batch_size):  # the rows left over are dropped
                    if index >= start:
                        yield data[rows]
                    index += 1
            if produced == 0:
                raise SAEConfigError(
                    f"batch_size={batch_size} is larger than any group of {shards_in_memory} shards; "
                    "lower the batch size or raise shards_in_memory"
                )
            epoch += 1


def write_store(
    activations: Float[torch.Tensor, "n d_in"],
    out: str | os.PathLike[str],
    hook: str = "external",
    model_name: str = "external",
    tokens_per_shard: int = 65_536,
    tokens: Int[torch.Tensor, " n"] | None = None,
) -> ActivationStore:
    """Store activations you already have (from another tool, or synthetic) in the store format."""
    if activations.ndim != 2:
        raise SAEConfigError(f"activations must be [n, d_in], got shape {tuple(activations.shape)}")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    toks = tokens if tokens is not None else torch.zeros(activations.shape[0], dtype=torch.int32)
    shards: list[dict[str, Any]] = []
    for i, part in enumerate(batch_slices(activations.shape[0], tokens_per_shard)):
        start, rows = part.start, activations[part]
        name = f"shard_{i:05d}.safetensors"
        atomic_save_tensors(
            {"activations": rows.float(), "tokens": toks[part].to(torch.int32)},
            folder / name,
        )
        shards.append({"file": name, "n_tokens": int(rows.shape[0]), "contexts": [start, start + int(rows.shape[0])],
                       "sha256": file_sha256(folder / name)})  # fmt: skip
    payload = {
        "format": STORE_FORMAT,
        "version": STORE_VERSION,
        "model": model_name,
        "hook": hook,
        "context_size": 0,
        "exclude_bos": False,
        "dtype": "float32",
        "seed": 0,
        "tokens_per_shard": tokens_per_shard,
        "corpus": {"name": "external activations", "sha256": "", "n_documents": 0},
        "d_in": int(activations.shape[1]),
        "n_tokens": int(activations.shape[0]),
        "complete": True,
        "shards": shards,
    }
    atomic_write_json(folder / MANIFEST, payload, indent=2)
    return ActivationStore(folder)
