"""One fine-tuning run into one folder: ``run/`` (resumable checkpoints) and ``model/`` (the saved model)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from circuitscope.finetune.config import FinetuneConfig
from circuitscope.finetune.data import Source, finetune_data
from circuitscope.finetune.save import save_finetuned
from circuitscope.finetune.train import FinetuneResult, finetune
from circuitscope.progress import OnProgress

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["finetune_into", "model_folder"]


def model_folder(folder: str | Path) -> Path:
    """Where :func:`finetune_into` saves the model of ``folder``."""
    return Path(folder) / "model"


def finetune_into(
    model: HookedModel,
    folder: str | Path,
    source: Source = None,
    config: FinetuneConfig | None = None,
    *,
    on_progress: OnProgress | None = None,
) -> FinetuneResult:
    """Fine-tune ``model`` on ``source`` with checkpoints in ``folder/run`` (resumed if there) and save the
    result to ``folder/model`` (:func:`~circuitscope.finetune.save.save_finetuned`)."""
    config = config or FinetuneConfig()
    data = finetune_data(model, source, config)
    result = finetune(model, data, config, out=Path(folder) / "run", on_progress=on_progress)
    save_finetuned(result, model_folder(folder))
    return result
