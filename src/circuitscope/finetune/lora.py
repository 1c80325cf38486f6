"""LoRA adapters from ``peft`` on a Hugging Face model, and merging them back into plain weights.

``peft`` is an optional dependency (``pip install circuitscope[finetune]``), imported only here and
only when a LoRA fine-tune starts. The adapters are initialised from a generator seeded by the
run's seed (torch's global generator is left as it was), have no dropout (so a resumed run is the
uninterrupted one, bit for bit), and are merged into the base weights for the saved model.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from circuitscope.finetune.config import FinetuneConfig
from circuitscope.finetune.errors import FinetuneError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = ["add_lora", "lora_targets", "merge_lora"]


def lora_targets(model: nn.Module, names: tuple[str, ...]) -> list[str]:
    """The last names of ``model``'s linear modules that are in ``names`` (refused when there is none)."""
    found = sorted({full.rsplit(".", 1)[-1] for full, m in model.named_modules() if isinstance(m, nn.Linear)})
    chosen = [n for n in found if n in names]
    if not chosen:
        raise FinetuneError(
            f"none of the LoRA targets {list(names)} is a linear module of this model; its linear modules are "
            f"named {found[:12]}: pass some of them as lora_targets (--lora-target)"
        )
    return chosen


def _peft() -> Any:
    try:
        import peft
    except ImportError as err:
        raise FinetuneError(
            "LoRA fine-tuning needs peft: pip install 'circuitscope[finetune]' (or use --method full)"
        ) from err
    return peft


def add_lora(hf_model: nn.Module, config: FinetuneConfig) -> nn.Module:
    """``hf_model`` (changed in place) with trainable LoRA adapters, every other weight frozen."""
    peft = _peft()
    lora = peft.LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=0.0,
        target_modules=lora_targets(hf_model, config.lora_targets),
        bias="none",
    )
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # peft 0.21 reads transformers' deprecated `is_gradient_checkpointing` (a FutureWarning on 5.x)
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        torch.manual_seed(config.seed)
        return peft.get_peft_model(hf_model, lora)


def merge_lora(peft_model: nn.Module) -> PreTrainedModel:
    """The base model with every adapter added into its weights (``W + (alpha / r) B A``), adapters removed."""
    merged: Any = peft_model.merge_and_unload()  # type: ignore[operator]
    return merged
