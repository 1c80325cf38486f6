"""Toy models trained from scratch and the labs that reproduce classic results on them.

- :mod:`~circuitscope.toy.model`: a small decoder-only transformer (a Hugging Face model of its own
  family, so ``circuitscope.HookedModel(model)`` gives it every canonical hook name);
- :mod:`~circuitscope.toy.trainer`: seeded AdamW training with warm-up, checkpoints (safetensors +
  JSON), bit-for-bit resumption and metric callbacks;
- labs: :mod:`~circuitscope.toy.superposition_lab`, :mod:`~circuitscope.toy.grokking_lab`,
  :mod:`~circuitscope.toy.induction`, :mod:`~circuitscope.toy.maze` (a maze policy's goal
  misgeneralization and cheese vector), :mod:`~circuitscope.toy.icl` (in-context regression against
  gradient descent), :mod:`~circuitscope.toy.othello` (Othello-GPT: a world model in a sequence
  model), :mod:`~circuitscope.toy.addition_lab` (n-digit addition: a phase change per digit and the
  heads of each carry), each with a report module beside it.
"""

from circuitscope.models.toy.modeling import ToyConfig, ToyTransformer
from circuitscope.toy.addition_lab import AdditionConfig, AdditionResult, run_addition
from circuitscope.toy.errors import CheckpointError, LabConfigError
from circuitscope.toy.grokking import ModularAddition, excluded_loss, restricted_loss
from circuitscope.toy.grokking_lab import GrokkingConfig, GrokkingResult, run_grokking
from circuitscope.toy.icl import ICLConfig, ICLResult, LinearSelfAttention, SoftmaxRegressor, run_icl
from circuitscope.toy.induction import InductionConfig, InductionRun, run_induction, train_induction_model
from circuitscope.toy.maze import MazeConfig, MazePolicy, MazeResult, run_maze
from circuitscope.toy.model import build_toy
from circuitscope.toy.othello import OthelloConfig, OthelloResult, run_othello
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
    "AdditionConfig",
    "AdditionResult",
    "CheckpointError",
    "GrokkingConfig",
    "GrokkingResult",
    "ICLConfig",
    "ICLResult",
    "InductionConfig",
    "InductionRun",
    "LabConfigError",
    "LinearSelfAttention",
    "MazeConfig",
    "MazePolicy",
    "MazeResult",
    "ModularAddition",
    "OthelloConfig",
    "OthelloResult",
    "SoftmaxRegressor",
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
    "run_addition",
    "run_grokking",
    "run_icl",
    "run_induction",
    "run_maze",
    "run_othello",
    "seeded_batches",
    "shuffled_batches",
    "sparsity_sweep",
    "train",
    "train_induction_model",
    "train_superposition",
]
