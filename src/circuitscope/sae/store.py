"""Activation store: a hook's activations over a corpus, as sharded safetensors with a versioned JSON manifest.

Layout of a store folder::

    manifest.json              format, version, model, hook, dtype, context size, corpus and its hash,
                               and the list of complete shards (file, tokens, contexts, sha256)
    shard_00000.safetensors    "activations" [tokens, d_in] and "tokens" [tokens] (the token at each row)

Collection runs the model only up to the hooked layer (``cache_activations`` stops the
forward pass there). Each shard is written to a temporary name and renamed, and only then
added to the manifest (also written atomically), so an interrupted collection leaves no
half-written shard in the manifest; :func:`collect_activations` called again on the same folder
checks every listed shard and continues after the last good one.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from circuitscope.core.files import atomic_write_json
from circuitscope.core.hooked_model import HookedModel
from circuitscope.engine.batching import batch_slices, batched
from circuitscope.progress import OnProgress, status, track
from circuitscope.sae.corpus import Contexts, Corpus, build_contexts
from circuitscope.sae.errors import ActivationStoreError, SAEConfigError
from circuitscope.sae.io import atomic_save_tensors

__all__ = [
    "MANIFEST",
    "STORE_FORMAT",
    "STORE_VERSION",
    "ActivationStore",
    "CollectConfig",
    "collect_activations",
    "write_store",
]

MANIFEST = "manifest.json"
STORE_FORMAT = "circuitscope.activations"
STORE_VERSION = 1
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class CollectConfig:
    """How to collect activations."""

    hook: str
    """Hook name, e.g. ``blocks.6.hook_resid_post``."""
    tokens: int = 500_000
    """Number of activation vectors (token positions) to store."""
    context_size: int = 128
    """Tokens per context, BOS included."""
    batch_size: int = 16
    """Contexts per forward pass."""
    tokens_per_shard: int = 65_536
    """Rows per shard file (the last shard may be shorter)."""
    exclude_bos: bool = True
    """Leave BOS positions out (their activations are outliers that dominate the loss)."""
    dtype: str = "float32"
    """Storage dtype: float32, float16 or bfloat16."""
    seed: int = 0
    """Seed of the context shuffle."""

    def __post_init__(self) -> None:
        if self.tokens <= 0 or self.batch_size <= 0 or self.tokens_per_shard <= 0:
            raise SAEConfigError("tokens, batch_size and tokens_per_shard must be positive")
        if self.context_size < 2:
            raise SAEConfigError(f"context_size must be at least 2, got {self.context_size}")
        if self.dtype not in _DTYPES:
            raise SAEConfigError(f"dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _shard_ok(folder: Path, entry: dict[str, Any], d_in: int, full: bool) -> str | None:
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
    if full and _sha256(path) != entry.get("sha256"):
        return f"{path.name} does not match its sha256 in the manifest (the file is corrupt)"
    return None


_MANIFEST_FIELDS: dict[str, type | tuple[type, ...]] = {"model": str, "hook": str, "d_in": int, "shards": list}
_SHARD_FIELDS: dict[str, type | tuple[type, ...]] = {"file": str, "n_tokens": int, "contexts": list}


def _check_manifest(manifest: Any, path: Path) -> None:
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
        _check_manifest(manifest, path)
        self.manifest: dict[str, Any] = manifest
        self.d_in = int(manifest["d_in"])
        for entry in self.shards:
            problem = _shard_ok(self.folder, entry, self.d_in, full=verify)
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


def _check_resume(manifest: dict[str, Any], expected: dict[str, Any], folder: Path) -> None:
    for key, value in expected.items():
        if manifest.get(key) != value:
            raise ActivationStoreError(
                f"{folder} already holds activations collected with {key}={manifest.get(key)!r}, not {value!r}; "
                "use a new --out folder (nothing in this one was changed)"
            )


def collect_activations(
    model: HookedModel,
    corpus: Corpus,
    out: str | os.PathLike[str],
    cfg: CollectConfig,
    model_name: str = "",
    contexts: Contexts | None = None,
    stop_after_shards: int | None = None,
    on_progress: OnProgress | None = None,
) -> ActivationStore:
    """Run ``model`` over ``corpus`` and store the activations of ``cfg.hook`` under ``out`` (resumes if present).

    ``stop_after_shards`` ends the call after writing that many new shards (for tests and
    for splitting a long collection over several runs). ``on_progress(stage, done, total)`` is told
    the batches of contexts run (stage ``Collecting <hook>``; a resumed run counts what is left).
    """
    model.hook_point(cfg.hook)  # unknown hook: a clear HookNameError before anything is written
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    if contexts is None:
        with status("Tokenizing the corpus"):
            contexts = build_contexts(model, corpus, cfg.context_size, seed=cfg.seed)
    writer = _ShardWriter(folder, _store_identity(model, corpus, cfg, model_name))
    writer.resume()
    skip_first = 1 if (cfg.exclude_bos and contexts.has_bos) else 0
    needed_contexts = _contexts_needed(cfg, contexts.tokens.shape[0], cfg.context_size - skip_first)
    next_context = writer.shards[-1]["contexts"][1] if writer.shards else 0
    new_shards = 0
    batches = batch_slices(needed_contexts, cfg.batch_size, start=next_context)
    with torch.inference_mode():
        for part in track(batches, f"Collecting {cfg.hook}", on_progress, total=len(batches)):
            toks = contexts.tokens[part]
            writer.add(_hook_rows(model, cfg, toks, skip_first), toks[:, skip_first:].reshape(-1).to(torch.int32))
            last = part.stop >= needed_contexts
            if writer.buffered >= cfg.tokens_per_shard or last:
                writer.flush(part.stop, keep=cfg.tokens - writer.done if last else None)  # last: exactly the tokens
                new_shards += 1
                if stop_after_shards is not None and new_shards >= stop_after_shards and not last:
                    break
    if writer.d_in is None:  # nothing left to do: the folder was complete
        writer.d_in = int(json.loads(writer.manifest_path.read_text())["d_in"])
        writer.write_manifest(complete=True)
    return ActivationStore(folder)


def _store_identity(model: HookedModel, corpus: Corpus, cfg: CollectConfig, model_name: str) -> dict[str, Any]:
    """The manifest fields a resumed collection must match."""
    return {
        "format": STORE_FORMAT,
        "version": STORE_VERSION,
        "model": model_name or model.cfg.model_type,
        "hook": cfg.hook,
        "context_size": cfg.context_size,
        "exclude_bos": cfg.exclude_bos,
        "dtype": cfg.dtype,
        "seed": cfg.seed,
        "tokens_per_shard": cfg.tokens_per_shard,
        "corpus": {"name": corpus.name, "sha256": corpus.sha256, "n_documents": len(corpus.documents)},
    }


def _contexts_needed(cfg: CollectConfig, n_contexts: int, per_context: int) -> int:
    """How many contexts give ``cfg.tokens`` activations; refused when the corpus has fewer."""
    needed = -(-cfg.tokens // per_context)
    if needed > n_contexts:
        raise SAEConfigError(
            f"the corpus gives {n_contexts} contexts of {cfg.context_size} tokens ({n_contexts * per_context} "
            f"activations), fewer than the {cfg.tokens} requested; lower --tokens or add text"
        )
    return needed


def _hook_rows(
    model: HookedModel, cfg: CollectConfig, toks: Int[torch.Tensor, "batch pos"], skip_first: int
) -> Float[torch.Tensor, "rows d_in"]:
    """The hook's activations over a batch of contexts, one row per stored token, on the CPU in the store's dtype."""
    acts = model.cache_activations(toks, cfg.hook)[cfg.hook]
    if acts.ndim != 3:
        raise SAEConfigError(
            f"{cfg.hook} has shape {tuple(acts.shape)}; the store takes [batch, pos, d] activations "
            "(per-head hooks such as attn.hook_z need flattening first)"
        )
    return acts[:, skip_first:].reshape(-1, int(acts.shape[-1])).to("cpu", _DTYPES[cfg.dtype])


class _ShardWriter:
    """The shards of one store folder: the good ones already there, then new ones as rows are buffered."""

    def __init__(self, folder: Path, expected: dict[str, Any]) -> None:
        self.folder, self.expected = folder, expected
        self.manifest_path = folder / MANIFEST
        self.shards: list[dict[str, Any]] = []
        self.d_in: int | None = None
        self.done = 0
        """Activations in the complete shards."""
        self._acts: list[torch.Tensor] = []
        self._toks: list[torch.Tensor] = []
        self.buffered = 0
        self._start = 0

    def resume(self) -> None:
        """Keep the listed shards up to the first bad one (a manifest for another collection is refused)."""
        if self.manifest_path.is_file():
            try:
                manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise ActivationStoreError(
                    f"{self.manifest_path} is not valid JSON ({err}); move it away to start over"
                ) from err
            _check_manifest(manifest, self.manifest_path)
            _check_resume(manifest, self.expected, self.folder)
            for entry in manifest.get("shards", []):
                if _shard_ok(self.folder, entry, int(manifest["d_in"]), full=True) is not None:
                    break  # re-collect from the first bad shard on
                self.shards.append(entry)
        self.done = sum(int(s["n_tokens"]) for s in self.shards)
        self._start = self.shards[-1]["contexts"][1] if self.shards else 0

    def add(self, acts: torch.Tensor, toks: torch.Tensor) -> None:
        self.d_in = int(acts.shape[-1])
        self._acts.append(acts)
        self._toks.append(toks)
        self.buffered += acts.shape[0]

    def flush(self, end: int, keep: int | None) -> None:
        """Write the buffered rows (the first ``keep`` of them) as the next shard, for contexts up to ``end``."""
        rows, tok_rows = torch.cat(self._acts), torch.cat(self._toks)
        if keep is not None:
            rows, tok_rows = rows[:keep], tok_rows[:keep]
        name = f"shard_{len(self.shards):05d}.safetensors"
        atomic_save_tensors({"activations": rows, "tokens": tok_rows}, self.folder / name)
        entry = {"file": name, "n_tokens": int(rows.shape[0]), "contexts": [self._start, end]}
        self.shards.append({**entry, "sha256": _sha256(self.folder / name)})
        self.done += int(rows.shape[0])
        self.write_manifest(complete=keep is not None)
        self._acts, self._toks, self.buffered, self._start = [], [], 0, end

    def write_manifest(self, complete: bool) -> None:
        payload = dict(self.expected)
        payload.update({"d_in": self.d_in, "n_tokens": self.done, "complete": complete, "shards": self.shards})
        atomic_write_json(self.manifest_path, payload, indent=2)


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
                       "sha256": _sha256(folder / name)})  # fmt: skip
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
