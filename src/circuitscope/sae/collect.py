"""Collecting a hook's activations into a store, in one process or across the ranks of a ``torchrun`` launch.

What a collection writes is planned before any forward pass: the contexts it needs and, from
the batch size and ``tokens_per_shard``, which contexts go into which shard (a shard closes at
the first batch that fills it). Shard ``i`` is then a pure function of the model, the corpus,
the config and ``i``, so the work splits by shard: under ``torchrun`` each rank collects a
contiguous block of the shard indices (:func:`~circuitscope.engine.distributed.shard`), records
the shards it finished in its own ``collect.rank-XXXXX.json``, and once every rank is done
rank 0 writes the manifest and removes those files. The folder N ranks leave is the one a
single process leaves: the same shard files, byte for byte, and the same manifest.

An interrupted collection, in one process or many, resumes: called again with the same
settings (on any number of ranks) it keeps every shard listed in the manifest or a rank's
record whose file still matches its sha256, and collects the others. A folder holding another
collection (another model, by name or by weights, another hook, another corpus or settings) is
refused before any work. The forward pass stops at the hooked layer (``cache_activations``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int

from circuitscope.core.files import atomic_write_json
from circuitscope.core.fingerprint import model_fingerprint
from circuitscope.core.hooked_model import HookedModel
from circuitscope.engine.batching import batch_slices
from circuitscope.engine.distributed import World, all_gather, check_same_arguments, process_group, shard
from circuitscope.progress import OnProgress, status, track
from circuitscope.sae.corpus import Contexts, Corpus, build_contexts
from circuitscope.sae.errors import ActivationStoreError, SAEConfigError
from circuitscope.sae.io import atomic_save_tensors
from circuitscope.sae.store import (
    MANIFEST,
    STORE_DTYPES,
    STORE_FORMAT,
    STORE_VERSION,
    ActivationStore,
    check_manifest,
    file_sha256,
    shard_problem,
)

__all__ = ["CollectConfig", "PlannedShard", "collect_activations", "plan_shards"]

_RANK_RECORD = "collect.rank-{:05d}.json"


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
    """Rows per shard file (a shard closes at the first batch that fills it; the last one may be shorter)."""
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
        if self.dtype not in STORE_DTYPES:
            raise SAEConfigError(f"dtype must be one of {', '.join(STORE_DTYPES)}, got {self.dtype!r}")


@dataclass(frozen=True)
class PlannedShard:
    """One shard of a collection, known before any forward pass: its ``index`` in the store, the ``contexts`` it
    holds (whole batches of ``batch_size``) and the ``n_tokens`` rows it stores (all of its contexts' positions; the
    last shard stops at ``tokens``)."""

    index: int
    contexts: range
    n_tokens: int

    @property
    def file(self) -> str:
        return f"shard_{self.index:05d}.safetensors"


def plan_shards(cfg: CollectConfig, n_contexts: int, per_context: int) -> list[PlannedShard]:
    """The shards that ``cfg.tokens`` activations from ``n_contexts`` contexts of ``per_context`` rows make.

    Refused (:class:`SAEConfigError`) when the contexts hold fewer than ``cfg.tokens`` activations.
    """
    needed = -(-cfg.tokens // per_context)
    if needed > n_contexts:
        raise SAEConfigError(
            f"the corpus gives {n_contexts} contexts of {cfg.context_size} tokens ({n_contexts * per_context} "
            f"activations), fewer than the {cfg.tokens} requested; lower --tokens or add text"
        )
    plan: list[PlannedShard] = []
    start = 0
    for part in batch_slices(needed, cfg.batch_size):
        rows = (part.stop - start) * per_context
        if rows >= cfg.tokens_per_shard or part.stop == needed:
            done = sum(p.n_tokens for p in plan)
            plan.append(PlannedShard(len(plan), range(start, part.stop), min(rows, cfg.tokens - done)))
            start = part.stop
    return plan


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

    Under ``torchrun`` the ranks split the shards and every rank returns the whole store.
    ``stop_after_shards`` ends the call after each rank wrote that many new shards (for tests
    and for splitting a long collection over several runs). ``on_progress(stage, done, total)``
    is told the batches of contexts run (stage ``Collecting <hook>``; a resumed run counts what
    is left).
    """
    model.hook_point(cfg.hook)  # unknown hook: a clear HookNameError before anything is written
    folder = Path(out)
    identity = _store_identity(model, corpus, cfg, model_name)
    with process_group() as world:
        settings = {**identity, "out": str(folder), "tokens": cfg.tokens, "batch_size": cfg.batch_size}
        check_same_arguments({**settings, "stop_after_shards": stop_after_shards}, world)
        records = _Records(folder, identity, world)
        records.check()  # another collection in this folder: refused before any work
        if contexts is None:
            with status("Tokenizing the corpus"):
                contexts = build_contexts(model, corpus, cfg.context_size, seed=cfg.seed)
        skip_first = 1 if (cfg.exclude_bos and contexts.has_bos) else 0
        plan = plan_shards(cfg, contexts.tokens.shape[0], cfg.context_size - skip_first)
        folder.mkdir(parents=True, exist_ok=True)
        mine = [plan[i] for i in shard(len(plan), world)]
        good = records.good(mine)
        todo = [p for p in mine if p.index not in good]
        if stop_after_shards is not None:
            todo = todo[:stop_after_shards]
        batches = [(p, part) for p in todo for part in batch_slices(p.contexts.stop, cfg.batch_size, p.contexts.start)]
        pending: list[torch.Tensor] = []
        with torch.inference_mode():
            for planned, part in track(batches, f"Collecting {cfg.hook}", on_progress, total=len(batches)):
                pending.append(_hook_rows(model, cfg, contexts.tokens[part], skip_first))
                if part.stop == planned.contexts.stop:
                    toks = contexts.tokens[planned.contexts.start : planned.contexts.stop, skip_first:]
                    good[planned.index] = records.write(planned, pending, toks)
                    pending = []
        records.finish(plan, good)
    return ActivationStore(folder)


def _store_identity(model: HookedModel, corpus: Corpus, cfg: CollectConfig, model_name: str) -> dict[str, Any]:
    """The manifest fields a resumed collection must match."""
    return {
        "format": STORE_FORMAT,
        "version": STORE_VERSION,
        "model": model_name or model.cfg.model_type,
        "model_fingerprint": model_fingerprint(model),
        "hook": cfg.hook,
        "context_size": cfg.context_size,
        "exclude_bos": cfg.exclude_bos,
        "dtype": cfg.dtype,
        "seed": cfg.seed,
        "tokens_per_shard": cfg.tokens_per_shard,
        "corpus": {"name": corpus.name, "sha256": corpus.sha256, "n_documents": len(corpus.documents)},
    }


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
    return acts[:, skip_first:].reshape(-1, int(acts.shape[-1])).to("cpu", STORE_DTYPES[cfg.dtype])


class _Records:
    """What a folder says is collected: the manifest and the ranks' records; this rank's record as it writes."""

    def __init__(self, folder: Path, identity: dict[str, Any], world: World) -> None:
        self.folder, self.identity, self.world = folder, identity, world
        self.d_in: int | None = None
        self._listed: dict[str, dict[str, Any]] = {}
        """Shard entries by file name, from every record in the folder (checked against the plan later)."""
        self._kept: dict[str, dict[str, Any]] = {}
        """This rank's good and new shards by file name: what its record lists."""

    def _sources(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        found = [self.folder / MANIFEST] if (self.folder / MANIFEST).is_file() else []
        return found + sorted(self.folder.glob(_RANK_RECORD.replace("{:05d}", "*")))

    def check(self) -> None:
        """Read every record; refuse one of another collection (nothing is changed)."""
        for path in self._sources():
            try:
                manifest = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise ActivationStoreError(f"{path} is not valid JSON ({err}); move it away to start over") from err
            check_manifest(manifest, path)
            for key, value in self.identity.items():
                if manifest.get(key) != value:
                    raise ActivationStoreError(
                        f"{self.folder} already holds activations collected with {key}={manifest.get(key)!r}, not "
                        f"{value!r}; use a new --out folder (nothing in this one was changed)"
                    )
            self.d_in = int(manifest["d_in"])
            for entry in manifest["shards"]:
                self._listed.setdefault(str(entry["file"]), entry)

    def good(self, mine: list[PlannedShard]) -> dict[int, dict[str, Any]]:
        """This rank's planned shards that a record lists and whose file still matches it, by index."""
        good: dict[int, dict[str, Any]] = {}
        for planned in mine:
            entry = self._listed.get(planned.file)
            if entry is None or self.d_in is None or entry.get("n_tokens") != planned.n_tokens:
                continue
            if entry.get("contexts") != [planned.contexts.start, planned.contexts.stop]:
                continue
            if shard_problem(self.folder, entry, self.d_in, full=True) is None:
                good[planned.index] = self._kept[planned.file] = entry
        return good

    def write(self, planned: PlannedShard, rows: list[torch.Tensor], toks: torch.Tensor) -> dict[str, Any]:
        """Write ``planned`` (its first ``n_tokens`` rows) and record it; its manifest entry."""
        acts = torch.cat(rows)[: planned.n_tokens]
        tok_rows = toks.reshape(-1).to(torch.int32)[: planned.n_tokens]
        self.d_in = int(acts.shape[-1])
        path = self.folder / planned.file
        atomic_save_tensors({"activations": acts, "tokens": tok_rows}, path)
        entry = {
            "file": planned.file,
            "n_tokens": planned.n_tokens,
            "contexts": [planned.contexts.start, planned.contexts.stop],
            "sha256": file_sha256(path),
        }
        self._kept[planned.file] = entry
        self._write_record()
        return entry

    def _write_record(self) -> None:
        """The shards known so far: the manifest in one process, this rank's own record under torchrun."""
        entries = sorted(self._kept.values(), key=lambda e: str(e["file"]))
        name = MANIFEST if not self.world.distributed else _RANK_RECORD.format(self.world.rank)
        self._write(self.folder / name, entries, complete=False)

    def _write(self, path: Path, entries: list[dict[str, Any]], complete: bool) -> None:
        payload = dict(self.identity)
        n_tokens = sum(int(e["n_tokens"]) for e in entries)
        payload.update({"d_in": self.d_in, "n_tokens": n_tokens, "complete": complete, "shards": entries})
        atomic_write_json(path, payload, indent=2)

    def finish(self, plan: list[PlannedShard], good: dict[int, dict[str, Any]]) -> None:
        """Every rank's shards gathered; rank 0 writes the manifest (complete once every planned shard is) and
        removes the ranks' records."""
        gathered = all_gather((self.d_in, good), self.world)
        merged: dict[int, dict[str, Any]] = {}
        for d_in, part in gathered:
            self.d_in = d_in if d_in is not None else self.d_in
            merged.update(part)
        if self.world.is_main:
            entries = [merged[p.index] for p in plan if p.index in merged]
            self._write(self.folder / MANIFEST, entries, complete=len(entries) == len(plan))
            for path in self._sources():
                if path.name != MANIFEST:
                    path.unlink()
        all_gather(None, self.world)  # a barrier: no rank reads the store before the manifest is written
