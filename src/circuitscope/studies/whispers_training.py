"""Training the whispers study's decoders: every readout's decoder from one model forward per step.

The text is split by document (``test_documents`` documents, drawn with the seed, are held out), each
side cut into contexts (:func:`~circuitscope.sae.build_contexts`). Step ``i`` runs the model once
under ``torch.inference_mode`` on contexts ``i * batch_contexts ...`` of the shuffled training
contexts, stopping after the deepest readout's layer, and every decoder takes its Adam step on its
own dimensions of that one pass (one optimiser over all decoders: Adam's update of a parameter
depends on its own gradient only, so this is the same as training each alone). A run is a pure
function of the model, the corpus and the config; a checkpoint holds the decoders (their
standardization included), Adam's moments and the history, so a resumed run ends bit for bit where
an uninterrupted one does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Int
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from circuitscope.core.files import read_json_object
from circuitscope.core.fingerprint import model_fingerprint
from circuitscope.progress import OnProgress, track
from circuitscope.sae.checkpoint import checkpoint_folders, checkpoint_tensors, restore_tensors, write_checkpoint
from circuitscope.sae.corpus import Contexts, Corpus, build_contexts
from circuitscope.studies.errors import StudyConfigError
from circuitscope.studies.whispers_config import Readout, WhispersConfig
from circuitscope.studies.whispers_decoder import WhisperDecoder

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = [
    "SavedRun",
    "TokenVocabulary",
    "WhispersData",
    "WhispersRun",
    "check_readouts",
    "new_run",
    "prepare",
    "read_readouts",
    "run_source",
    "saved_run",
    "train_decoders",
]

CHECKPOINT_FORMAT = "circuitscope.whispers_checkpoint"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class TokenVocabulary:
    """The decoders' compact vocabulary: the training text's most frequent tokens, then one "other" class."""

    ids: Int[torch.Tensor, " n"]
    """Model token ids of the compact classes ``0 .. n - 1``, most frequent first."""
    lookup: Int[torch.Tensor, " d_vocab"]
    """Each model token's compact class (``other`` for the tokens not in ``ids``)."""

    @property
    def other(self) -> int:
        return int(self.ids.shape[0])

    @property
    def size(self) -> int:
        return self.other + 1

    @classmethod
    def of(cls, tokens: torch.Tensor, size: int, d_vocab: int) -> TokenVocabulary:
        counts = torch.bincount(tokens.reshape(-1), minlength=d_vocab)
        seen = int((counts > 0).sum())
        order = torch.sort(counts, descending=True, stable=True).indices[: min(size - 1, seen)]
        lookup = torch.full((d_vocab,), int(order.shape[0]), dtype=torch.long)
        lookup[order] = torch.arange(order.shape[0])
        return cls(order, lookup)


@dataclass(frozen=True)
class WhispersData:
    """The held-out split, the contexts and the vocabulary of one run."""

    train: Contexts
    test: Contexts
    vocab: TokenVocabulary
    skip: int
    """Leading positions not read or predicted (1 for BOS)."""
    n_train_documents: int
    n_test_documents: int


@dataclass
class WhispersRun:
    """The decoders and what a checkpoint holds besides the config."""

    decoders: nn.ModuleDict
    optim: torch.optim.Optimizer
    source: dict[str, Any]
    start: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def _split(corpus: Corpus, n_test: int, seed: int) -> tuple[Corpus, Corpus]:
    docs = [d for d in corpus.documents if d.strip()]
    if len(docs) <= n_test:
        raise StudyConfigError(
            f"the corpus has {len(docs)} documents; holding out test_documents={n_test} leaves none to train on. "
            "Give more documents or a smaller test_documents"
        )
    order = torch.randperm(len(docs), generator=torch.Generator().manual_seed(seed)).tolist()
    test = set(order[:n_test])
    return (
        Corpus(f"{corpus.name} (training documents)", [d for i, d in enumerate(docs) if i not in test]),
        Corpus(f"{corpus.name} (held-out documents)", [d for i, d in enumerate(docs) if i in test]),
    )


def check_readouts(model: HookedModel, cfg: WhispersConfig) -> list[Readout]:
    """The config's readouts, refusing a layer the model lacks (before any work)."""
    readouts = cfg.parsed_readouts()
    n = model.cfg.n_layers
    beyond = [r.layer for r in readouts if r.layer >= n]
    if beyond:
        raise StudyConfigError(f"readout layers {beyond} do not exist: the model has {n} layers (0..{n - 1})")
    if cfg.context_size > model.cfg.n_ctx:
        raise StudyConfigError(f"context_size={cfg.context_size} is more than the model's context, {model.cfg.n_ctx}")
    return readouts


def prepare(model: HookedModel, cfg: WhispersConfig, corpus: Corpus) -> WhispersData:
    """Split the corpus by document, cut both sides into contexts, and build the vocabulary from training text."""
    train_docs, test_docs = _split(corpus, cfg.test_documents, cfg.seed)
    train = build_contexts(model, train_docs, cfg.context_size, seed=cfg.seed)
    test = build_contexts(model, test_docs, cfg.context_size, seed=cfg.seed, max_contexts=cfg.test_contexts)
    skip = 1 if train.has_bos else 0
    vocab = TokenVocabulary.of(train.tokens[:, skip:], cfg.vocab_size, model.cfg.d_vocab)
    return WhispersData(train, test, vocab, skip, len(train_docs.documents), len(test_docs.documents))


def read_readouts(
    model: HookedModel, tokens: torch.Tensor, readouts: list[Readout], dims: list[torch.Tensor], skip: int
) -> list[torch.Tensor]:
    """Each readout's dimensions ``[batch, pos - skip, n_dims]`` from one forward that stops after the deepest."""
    with torch.inference_mode():
        cache = model.cache_activations(tokens, sorted({r.hook for r in readouts}))
    return [
        cache[r.hook][:, skip:][..., d].float().clone() for r, d in zip(readouts, dims, strict=True)
    ]  # out of inference mode


def run_source(model: HookedModel, corpus: Corpus) -> dict[str, Any]:
    """What a checkpoint must have been trained on to be resumed: the model's weights and the text."""
    return {"model_fingerprint": model_fingerprint(model), "corpus_sha256": corpus.sha256}


def new_run(cfg: WhispersConfig, data: WhispersData, dims: list[torch.Tensor], source: dict[str, Any]) -> WhispersRun:
    n_pos = cfg.context_size - data.skip
    decoders = nn.ModuleDict({
        str(i): WhisperDecoder(
            int(d.shape[0]), n_pos, data.vocab.size, d_model=cfg.d_decoder, n_layers=cfg.decoder_layers,
            n_heads=cfg.decoder_heads, seed=cfg.seed + i,
        )
        for i, d in enumerate(dims)
    })  # fmt: skip
    optim = torch.optim.Adam(decoders.parameters(), lr=cfg.lr, fused=True)
    return WhispersRun(decoders, optim, source)


def train_decoders(
    model: HookedModel,
    cfg: WhispersConfig,
    data: WhispersData,
    readouts: list[Readout],
    dims: list[torch.Tensor],
    run: WhispersRun,
    folder: Path | None,
    stop_after_steps: int | None,
    on_progress: OnProgress | None,
) -> float:
    """Train from ``run.start`` to the end (or ``stop_after_steps``); the seconds it took."""
    last = cfg.steps if stop_after_steps is None else min(cfg.steps, stop_after_steps)
    total = data.train.tokens.shape[0]
    t0 = time.perf_counter()
    todo = range(run.start, last)
    for step in track(todo, "training decoders", on_progress, total=len(todo)):
        rows = torch.tensor([(step * cfg.batch_contexts + j) % total for j in range(cfg.batch_contexts)])
        tokens = data.train.tokens[rows]
        xs = read_readouts(model, tokens, readouts, dims, data.skip)
        targets = data.vocab.lookup[tokens[:, data.skip :]]  # [batch, pos]
        decoders = list(run.decoders.values())
        if step == 0:
            for decoder, x in zip(decoders, xs, strict=True):
                decoder.fit_standardization(x)  # type: ignore[operator]
        for group in run.optim.param_groups:
            group["lr"] = cfg.lr_at(step)
        losses = [
            torch.nn.functional.cross_entropy(dec(x).flatten(0, 1), targets.flatten())
            for dec, x in zip(decoders, xs, strict=True)
        ]
        run.optim.zero_grad(set_to_none=True)
        torch.stack(losses).sum().backward()
        run.optim.step()
        if (step + 1) % 50 == 0 or step + 1 == cfg.steps:
            entry = {"step": float(step + 1), "seconds": round(time.perf_counter() - t0, 3)}
            run.history.append(entry | {r.name: float(loss.detach()) for r, loss in zip(readouts, losses, strict=True)})
        if folder is not None and cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0:
            save(run, folder, step + 1, cfg)
    seconds = time.perf_counter() - t0
    if folder is not None and run.start < last:
        save(run, folder, last, cfg)
    run.start = max(run.start, last)
    return seconds


def save(run: WhispersRun, folder: Path, step: int, cfg: WhispersConfig) -> None:
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "step": step,
        "config": cfg.identity(),
        "history": run.history,
        "source": run.source,
    }
    write_checkpoint(folder, step, checkpoint_tensors(run.decoders, run.optim, torch.zeros(0)), payload)


@dataclass(frozen=True)
class SavedRun:
    """The newest checkpoint of a folder: its step, history and tensors."""

    step: int
    history: list[dict[str, float]]
    tensors: dict[str, torch.Tensor]

    def restore(self, run: WhispersRun) -> None:
        restore_tensors(run.decoders, run.optim, self.tensors)
        run.start, run.history = self.step, list(self.history)


def saved_run(folder: Path, cfg: WhispersConfig, source: dict[str, Any]) -> SavedRun | None:
    """The newest checkpoint in ``folder`` (None: none), refusing one of other settings, model or corpus."""
    newest = next(iter(checkpoint_folders(folder)), None) if folder.is_dir() else None
    if newest is None:
        return None
    meta = read_json_object(newest / "trainer.json", StudyConfigError)
    problem = (
        "is not a whispers checkpoint of this version"
        if (meta.get("format"), meta.get("version")) != (CHECKPOINT_FORMAT, CHECKPOINT_VERSION)
        else "holds a run with other settings"
        if meta.get("config") != cfg.identity()
        else "holds a run of another model or corpus"
        if meta.get("source") != source
        else None
    )
    if problem is not None:
        raise StudyConfigError(
            f"{folder} {problem}; give the same settings, model and corpus to resume it, or a new output folder "
            "(nothing was changed)"
        )
    try:
        tensors = load_file(str(newest / "state.safetensors"))
    except (SafetensorError, OSError, ValueError) as err:
        raise StudyConfigError(f"{newest} is damaged ({err}); delete it to resume from an earlier checkpoint") from err
    return SavedRun(int(meta["step"]), list(meta["history"]), tensors)
