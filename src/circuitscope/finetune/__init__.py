"""Fine-tuning a model (full or LoRA) on text or a task's prompts, resumable, saved as a Hugging Face folder.

``finetune(model, finetune_data(model, source, config), config, out=checkpoints)`` trains a copy of
``model``; :func:`save_finetuned` writes it as a folder :func:`circuitscope.load_model` opens.
"""

from circuitscope.finetune.config import METHODS, FinetuneConfig, Method
from circuitscope.finetune.data import FinetuneData, Source, finetune_data, task_corpus
from circuitscope.finetune.errors import FinetuneError
from circuitscope.finetune.lora import add_lora, lora_targets, merge_lora
from circuitscope.finetune.run import finetune_into, model_folder
from circuitscope.finetune.save import FinetuneRecord, read_record, save_finetuned
from circuitscope.finetune.train import FinetuneResult, finetune, training_model

__all__ = [
    "METHODS",
    "FinetuneConfig",
    "FinetuneData",
    "FinetuneError",
    "FinetuneRecord",
    "FinetuneResult",
    "Method",
    "Source",
    "add_lora",
    "finetune",
    "finetune_data",
    "finetune_into",
    "lora_targets",
    "merge_lora",
    "model_folder",
    "read_record",
    "save_finetuned",
    "task_corpus",
    "training_model",
]
