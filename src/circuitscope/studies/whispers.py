"""Study: ML Chinese whispers. What does half a layer remember of the input?

The question (from the seed documents): "given a network, train another to reconstruct an input from
the bottom half of the third layer; given an input, sample ten input-guesses." Method: small
non-causal decoders (:class:`~circuitscope.studies.whispers_decoder.WhisperDecoder`) each read some
dimensions of one residual stream (:class:`~circuitscope.studies.whispers_config.Readout`: the low
half, the high half, a seeded random half or all of ``blocks.3.hook_resid_pre``, and another depth)
and predict every input token; all of them train from one model forward per step
(:mod:`~circuitscope.studies.whispers_training`) on text split by document, and are scored on the
held-out documents: token-recovery accuracy overall and by position, with 95% bootstrap intervals
over the held-out contexts, and the paired difference from the first readout. The floor: predicting
the training text's most frequent token everywhere (unigram), or its most frequent token at each
position. For a few held-out inputs, ten guesses sampled from each decoder are shown beside the original.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from circuitscope.engine.batching import batch_slices
from circuitscope.progress import OnProgress, stage
from circuitscope.sae.corpus import Corpus, default_corpus
from circuitscope.studies.estimates import Estimate, estimate
from circuitscope.studies.threads import forward_threads, torch_threads
from circuitscope.studies.whispers_config import Readout, WhispersConfig
from circuitscope.studies.whispers_decoder import WhisperDecoder, sample_guesses
from circuitscope.studies.whispers_training import (
    WhispersData,
    check_readouts,
    new_run,
    prepare,
    read_readouts,
    run_source,
    saved_run,
    train_decoders,
)

if TYPE_CHECKING:
    import os

    from circuitscope.core.hooked_model import HookedModel

__all__ = ["ReadoutScore", "Reconstruction", "WhispersResult", "whispers_study"]

QUESTION = "What does half a layer remember? A decoder reads half of the residual stream and guesses the input."


@dataclass(frozen=True)
class ReadoutScore:
    """How well one readout's decoder recovers the held-out input tokens."""

    readout: Readout
    n_dims: int
    """How many residual dimensions it reads."""
    accuracy: Estimate
    """Share of held-out tokens recovered exactly (argmax), over contexts."""
    vs_first: Estimate
    """Paired difference in accuracy from the first readout, over the same contexts."""
    test_loss: float
    """Mean cross-entropy on the held-out tokens (nats, over the compact vocabulary)."""
    by_position: list[Estimate]
    """The accuracy at each read position (position 0 is the first token after BOS)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "readout": self.readout.name,
            "hook": self.readout.hook,
            "half": self.readout.half,
            "n_dims": self.n_dims,
            "accuracy": self.accuracy.to_json(),
            "by_position": [e.to_json() for e in self.by_position],
            "vs_first": self.vs_first.to_json(),
            "test_loss": self.test_loss,
        }


@dataclass(frozen=True)
class Reconstruction:
    """One held-out input beside the guesses each decoder samples of it."""

    original: list[str]
    """The input's tokens (as text), read positions only."""
    guesses: list[list[list[str]]]
    """``guesses[r][s]``: the s-th sampled guess of readout ``r``, token by token."""
    recovered: list[float]
    """Per readout, the share of the input's tokens its argmax guess recovers."""

    def to_json(self) -> dict[str, Any]:
        return {"original": self.original, "guesses": self.guesses, "recovered": self.recovered}


@dataclass(frozen=True)
class WhispersResult:
    """The whispers study's numbers, examples and the trained decoders."""

    config: WhispersConfig
    scores: list[ReadoutScore]
    """One per readout, in the config's order."""
    unigram: Estimate
    """Floor: the training text's most frequent token at every position."""
    by_position_baseline: Estimate
    """Floor: the training text's most frequent token at each position."""
    coverage: float
    """Share of held-out tokens inside the decoders' vocabulary (no decoder can recover the others)."""
    examples: list[Reconstruction]
    steps: int
    """Training steps taken in total (earlier runs resumed included)."""
    train_tokens: int
    """Tokens read for training in total."""
    seconds: float
    """Wall time of this call's training."""
    threads: int
    """torch CPU threads it trained and scored on (the config's, or the faster of 1 and 2 as measured)."""
    n_train_documents: int
    n_test_documents: int
    n_test_tokens: int
    history: list[dict[str, float]]
    """Training loss of every readout every 50 steps."""
    decoders: nn.ModuleDict
    """The trained decoders, keyed ``"0"``, ``"1"``, ... in the readouts' order."""

    def answer(self) -> str:
        first = self.scores[0]
        parts = [
            f"Reading {first.readout.name} ({first.n_dims} of the residual dimensions at {first.readout.hook}), "
            f"a decoder trained for {self.steps} steps recovers {first.accuracy.text()} of the held-out tokens, "
            f"against a floor of {self.unigram.text()} (the most frequent token) and "
            f"{self.by_position_baseline.text()} (the most frequent per position)."
        ]
        for s in self.scores[1:]:
            parts.append(
                f"{s.readout.name} ({s.n_dims} dims): {s.accuracy.text()}, "
                f"{s.vs_first.text()} from {first.readout.name} ({s.vs_first.direction})."
            )
        parts.append(
            f"{self.coverage:.1%} of the held-out tokens are in the decoders' vocabulary (a ceiling). The residual "
            "basis is not privileged, so a half's accuracy against the random half's says whether those dimensions "
            "are special or only half of the space."
        )
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config.to_json(),
            "scores": [s.to_json() for s in self.scores],
            "unigram": self.unigram.to_json(),
            "by_position_baseline": self.by_position_baseline.to_json(),
            "coverage": self.coverage,
            "examples": [e.to_json() for e in self.examples],
            "steps": self.steps,
            "train_tokens": self.train_tokens,
            "seconds": self.seconds,
            "threads": self.threads,
            "n_train_documents": self.n_train_documents,
            "n_test_documents": self.n_test_documents,
            "n_test_tokens": self.n_test_tokens,
            "history": self.history,
            "answer": self.answer(),
        }


def whispers_study(
    model: HookedModel,
    config: WhispersConfig | None = None,
    corpus: Corpus | None = None,
    out: str | os.PathLike[str] | None = None,
    *,
    resume_run: bool = True,
    stop_after_steps: int | None = None,
    on_progress: OnProgress | None = None,
) -> WhispersResult:
    """Train the decoders of ``config.readouts`` on ``corpus`` (default: Shakespeare) and score them held out.

    With ``out``, checkpoints are written there and (``resume_run``) a run in it is continued, bit for bit;
    a folder of another run is refused before any work. ``stop_after_steps`` ends training early (how tests
    interrupt a run); the scores are then those of the decoders so far.
    """
    cfg = config if config is not None else WhispersConfig()
    readouts = check_readouts(model, cfg)
    folder = Path(out) if out is not None else None
    corpus = corpus if corpus is not None else default_corpus()
    source = run_source(model, corpus)
    saved = saved_run(folder, cfg, source) if folder is not None else None  # another run's folder: refused here
    with stage("tokenizing the text", on_progress):
        data = prepare(model, cfg, corpus)
    dims = [r.dims(model.cfg.d_model, cfg.seed) for r in readouts]
    run = new_run(cfg, data, dims, source)
    if saved is not None and resume_run:
        saved.restore(run)
    deepest = max(r.layer for r in readouts)  # the forward of every step stops there
    threads = cfg.threads or forward_threads(model, data.train.tokens[: cfg.batch_contexts], deepest)
    with torch_threads(threads):
        seconds = train_decoders(model, cfg, data, readouts, dims, run, folder, stop_after_steps, on_progress)
        with stage("scoring held-out text", on_progress):
            return _score(model, cfg, data, readouts, dims, run.decoders, run.start, run.history, seconds)


@torch.no_grad()
def _score(
    model: HookedModel,
    cfg: WhispersConfig,
    data: WhispersData,
    readouts: list[Readout],
    dims: list[torch.Tensor],
    decoders: nn.ModuleDict,
    steps: int,
    history: list[dict[str, float]],
    seconds: float,
) -> WhispersResult:
    """Score the decoders on the held-out contexts (``threads`` of the result: the count it runs under)."""
    tokens = data.test.tokens
    targets = data.vocab.lookup[tokens[:, data.skip :]]  # [n, pos]
    known = targets != data.vocab.other
    correct = torch.zeros(len(readouts), *targets.shape, dtype=torch.bool)
    loss = torch.zeros(len(readouts))
    example_logits: list[list[torch.Tensor]] = [[] for _ in readouts]
    for rows in batch_slices(tokens.shape[0], cfg.batch_contexts):
        xs = read_readouts(model, tokens[rows], readouts, dims, data.skip)
        for r, (decoder, x) in enumerate(zip(decoders.values(), xs, strict=True)):
            logits = decoder(x)  # [batch, pos, vocab]
            loss[r] += torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets[rows].flatten(), reduction="sum")
            logits[..., data.vocab.other] = float("-inf")  # a guess is always a real token
            correct[r, rows] = (logits.argmax(-1) == targets[rows]) & known[rows]
            example_logits[r].extend(logits[: max(0, cfg.examples - len(example_logits[r]))])
    per_context = correct.float().mean(-1)  # [readout, n]
    scores = [
        ReadoutScore(
            readout,
            int(d.shape[0]),
            estimate(per_context[r], cfg.n_boot, cfg.seed),
            estimate(per_context[r] - per_context[0], cfg.n_boot, cfg.seed),
            float(loss[r] / targets.numel()),
            [estimate(correct[r, :, p].float(), cfg.n_boot, cfg.seed) for p in range(targets.shape[1])],
        )
        for r, (readout, d) in enumerate(zip(readouts, dims, strict=True))
    ]
    unigram, per_position = _baselines(data, targets, known, cfg)
    examples = _examples(model, cfg, data, tokens, example_logits, correct)
    train_tokens = steps * cfg.batch_contexts * (cfg.context_size - data.skip)
    return WhispersResult(
        cfg, scores, unigram, per_position, float(known.float().mean()), examples, steps, train_tokens, seconds,
        torch.get_num_threads(), data.n_train_documents, data.n_test_documents, int(targets.numel()), history, decoders,
    )  # fmt: skip


def _baselines(
    data: WhispersData, targets: torch.Tensor, known: torch.Tensor, cfg: WhispersConfig
) -> tuple[Estimate, Estimate]:
    """Accuracy of the most frequent training token everywhere, and of the most frequent at each position."""
    train = data.vocab.lookup[data.train.tokens[:, data.skip :]]  # [n_train, pos]
    size = data.vocab.size
    counts = torch.stack([torch.bincount(train[:, p], minlength=size) for p in range(train.shape[1])])  # [pos, vocab]
    counts[:, data.vocab.other] = -1  # the floors guess real tokens too
    most = counts.sum(0).argmax()
    at_position = counts.argmax(-1)  # [pos]
    unigram = ((targets == most) & known).float().mean(-1)
    per_position = ((targets == at_position) & known).float().mean(-1)
    return estimate(unigram, cfg.n_boot, cfg.seed), estimate(per_position, cfg.n_boot, cfg.seed)


def _examples(
    model: HookedModel,
    cfg: WhispersConfig,
    data: WhispersData,
    tokens: torch.Tensor,
    logits: list[list[torch.Tensor]],
    correct: torch.Tensor,
) -> list[Reconstruction]:
    gen = torch.Generator().manual_seed(cfg.seed)
    words = lambda ids: model.tok.to_str_tokens(ids)  # noqa: E731
    examples = []
    for e in range(min(cfg.examples, tokens.shape[0])):
        guesses = []
        for r in range(len(logits)):
            drawn = sample_guesses(logits[r][e], cfg.n_samples, cfg.temperature, gen)  # [n_samples, pos] compact
            guesses.append([words(data.vocab.ids[g]) for g in drawn])
        known = data.vocab.lookup[tokens[e, data.skip :]] != data.vocab.other
        recovered = [float(correct[r, e].float().sum() / known.numel()) for r in range(len(logits))]
        examples.append(Reconstruction(words(tokens[e, data.skip :]), guesses, recovered))
    return examples


def decoder_of(result: WhispersResult, index: int) -> WhisperDecoder:
    """The trained decoder of the ``index``-th readout."""
    return cast(WhisperDecoder, result.decoders[str(index)])
