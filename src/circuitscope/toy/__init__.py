"""Toy models trained from scratch and the labs that reproduce classic results on them.

- :mod:`~circuitscope.toy.model`: a small decoder-only transformer (a Hugging Face model of its own
  family, so ``circuitscope.HookedModel(model)`` gives it every canonical hook name);
- :mod:`~circuitscope.toy.trainer`: seeded AdamW training with warm-up, checkpoints (safetensors +
  JSON), bit-for-bit resumption and metric callbacks;
- labs: :mod:`~circuitscope.toy.superposition_lab`, :mod:`~circuitscope.toy.grokking_lab`,
  :mod:`~circuitscope.toy.induction`, each with a report module beside it.
"""

from circuitscope.models.toy.modeling import ToyConfig, ToyTransformer
from circuitscope.toy.errors import CheckpointError, LabConfigError
from circuitscope.toy.grokking import ModularAddition, excluded_loss, restricted_loss
from circuitscope.toy.grokking_lab import GrokkingConfig, GrokkingResult, run_grokking
from circuitscope.toy.induction import InductionConfig, InductionRun, run_induction, train_induction_model
from circuitscope.toy.model import build_toy
from circuitscope.toy.superposition import (
    SuperpositionModel,
    TrainingOptions,
    dimensions_per_feature,
    feature_dimensionality,
    train_superposition,
)
from circuitscope.toy.superposition_lab import geometry_experiment, phase_diagram, sparsity_sweep
from circuitscope.toy.trainer import TrainConfig, TrainResult, full_batch, seeded_batches, shuffled_batches, train

__all__ = [
    "CheckpointError",
    "GrokkingConfig",
    "GrokkingResult",
    "InductionConfig",
    "InductionRun",
    "LabConfigError",
    "ModularAddition",
    "SuperpositionModel",
    "ToyConfig",
    "ToyTransformer",
    "TrainConfig",
    "TrainResult",
    "TrainingOptions",
    "build_toy",
    "dimensions_per_feature",
    "excluded_loss",
    "feature_dimensionality",
    "full_batch",
    "geometry_experiment",
    "phase_diagram",
    "restricted_loss",
    "run_grokking",
    "run_induction",
    "seeded_batches",
    "shuffled_batches",
    "sparsity_sweep",
    "train",
    "train_induction_model",
    "train_superposition",
]
