"""Fine-tuning a model on text: full or LoRA, through the toy trainer's seeded, resumable loop.

:func:`finetune` copies the model (the one passed in is left as it was), adds LoRA adapters or
makes every weight trainable, and trains with :func:`circuitscope.toy.train` (AdamW with warm-up,
batches a pure function of the step, checkpoints as safetensors + JSON under ``out``, an existing
folder of the same run resumed bit for bit). The loss is the next-token cross-entropy of
:func:`circuitscope.engine.loss.next_token_loss` over each context. Dropout stays off (the model is
trained in eval mode), so nothing random happens outside the seeded generators. A checkpoint holds
only the trainable tensors: the adapters for LoRA, every weight for full fine-tuning.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from circuitscope.core.fingerprint import model_fingerprint
from circuitscope.core.hooked_model import HookedModel
from circuitscope.engine.loss import next_token_loss
from circuitscope.finetune.config import FinetuneConfig
from circuitscope.finetune.data import FinetuneData
from circuitscope.finetune.lora import add_lora, merge_lora
from circuitscope.progress import OnProgress
from circuitscope.toy.trainer import Batch, LossFn, TrainConfig, shuffled_batches, train

__all__ = ["FinetuneResult", "finetune", "training_model"]


class _Trainable(nn.Module):
    """The trainable tensors of a model as a module of their own: what AdamW steps and a checkpoint holds."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "inner", model)  # not a submodule: its frozen weights stay out of state_dict
        self.config = getattr(model, "config", None)
        self._named = {n: p for n, p in model.named_parameters() if p.requires_grad}

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:
        yield from self._named.values()

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return {n: p.detach() for n, p in self._named.items()}

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        with torch.no_grad():
            for name, p in self._named.items():
                p.copy_(state_dict[name])

    def train(self, mode: bool = True) -> _Trainable:
        return self  # the model stays in eval mode: no dropout, so no unseeded randomness


@dataclass
class FinetuneResult:
    """A fine-tuned model and how it was made."""

    model: HookedModel
    """The fine-tuned model (LoRA merged into its weights), a new model: the base one is unchanged."""
    config: FinetuneConfig
    """The fine-tuning configuration."""
    base_fingerprint: str
    """:func:`~circuitscope.core.fingerprint.model_fingerprint` of the model fine-tuned."""
    data: dict[str, Any]
    """The corpus and the context counts (:meth:`FinetuneData.to_json`)."""
    loss: list[float]
    """Training loss of every step (before that step's update)."""
    n_trainable: int
    """Parameters trained (the adapters' for LoRA)."""
    seconds: float
    """Wall time of the training loop."""
    resumed_from: int | None = None
    """The checkpoint step the run continued from, if it resumed."""
    heldout: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 0, dtype=torch.long))
    """The held-out contexts (token ids) of the corpus."""

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config.to_json(),
            "base_fingerprint": self.base_fingerprint,
            "fingerprint": model_fingerprint(self.model),
            "data": self.data,
            "loss": self.loss,
            "first_loss": self.loss[0] if self.loss else None,
            "last_loss": self.loss[-1] if self.loss else None,
            "n_trainable": self.n_trainable,
            "seconds": self.seconds,
            "resumed_from": self.resumed_from,
        }


def _next_token_loss(inner: nn.Module) -> LossFn:
    device = next(inner.parameters()).device

    def loss(_trainable: nn.Module, batch: Batch) -> torch.Tensor:
        ids = batch[0].to(device)
        return next_token_loss(inner(input_ids=ids, use_cache=False).logits, ids)

    return loss


def training_model(model: HookedModel, config: FinetuneConfig) -> nn.Module:
    """A copy of ``model``'s Hugging Face model made trainable for ``config`` (LoRA adapters or every weight)."""
    inner = copy.deepcopy(model.hf_model).eval()
    if config.method == "lora":
        for p in inner.parameters():
            p.requires_grad_(False)
        return add_lora(inner, config)
    for p in inner.parameters():
        p.requires_grad_(True)
    return inner


def finetune(
    model: HookedModel,
    data: FinetuneData,
    config: FinetuneConfig | None = None,
    *,
    out: str | Path | None = None,
    on_progress: OnProgress | None = None,
) -> FinetuneResult:
    """Fine-tune a copy of ``model`` on ``data.train``; see the module docstring.

    ``out`` is the checkpoint folder (resumed when it holds this run). ``on_progress("fine-tuning",
    step, steps)`` is called before the first step and after each one.
    """
    config = config or FinetuneConfig()
    inner = training_model(model, config)
    trainable = _Trainable(inner)
    start = time.perf_counter()
    loss: list[float] = []
    resumed: int | None = None
    if config.steps > 0:
        train_config = TrainConfig(
            steps=config.steps, lr=config.lr, weight_decay=config.weight_decay, warmup_steps=config.warmup_steps,
            checkpoint_every=config.checkpoint_every, grad_clip=config.grad_clip, seed=config.seed,
            threads=config.threads,
        )  # fmt: skip
        run_config = {k: v for k, v in config.to_json().items() if k not in ("steps", "threads")}  # may change
        identity = {"finetune": run_config, "data": data.to_json(), "base": model_fingerprint(model)}
        batches = shuffled_batches(data.train, batch_size=config.batch_size, seed=config.seed)
        loss_fn = _next_token_loss(inner)
        run = train(
            trainable, loss_fn, batches, train_config, out=out, identity=identity, description="fine-tuning",
            on_progress=on_progress,
        )  # fmt: skip
        loss, resumed = run.loss, run.resumed_from
    for p in inner.parameters():
        p.requires_grad_(False)
    plain = merge_lora(inner) if config.method == "lora" else inner
    return FinetuneResult(
        model=HookedModel(plain.eval(), model.tokenizer),  # type: ignore[arg-type]
        config=config,
        base_fingerprint=model_fingerprint(model),
        data=data.to_json(),
        loss=loss,
        n_trainable=sum(p.numel() for p in trainable.parameters()),
        seconds=time.perf_counter() - start,
        resumed_from=resumed,
        heldout=data.heldout,
    )
