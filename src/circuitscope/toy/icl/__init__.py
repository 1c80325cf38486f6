"""In-context linear regression: transformers learn in context by gradient descent (von Oswald et al. 2023).

- :mod:`~circuitscope.toy.icl.tasks`: the tasks and the references (k GD steps, the best rate, least squares);
- :mod:`~circuitscope.toy.icl.models`: linear self-attention and a softmax transformer, with hook points
  (:mod:`~circuitscope.toy.icl.hooked`);
- :mod:`~circuitscope.toy.icl.compare`: predictions, sensitivities and weights against GD, lengths past training;
- :mod:`~circuitscope.toy.icl.lab`: the lab (:func:`run_icl`); its configuration in :mod:`~circuitscope.toy.icl.config`.
"""

from circuitscope.toy.icl.compare import GDComparison, LengthCurve, compare_with_gd, construction_fit
from circuitscope.toy.icl.config import ICLConfig, ICLPreset
from circuitscope.toy.icl.hooked import HookedRegressor
from circuitscope.toy.icl.lab import ICLModelRun, ICLResult, run_icl
from circuitscope.toy.icl.models import LinearSelfAttention, SoftmaxRegressor
from circuitscope.toy.icl.tasks import (
    RegressionTasks,
    best_gd_lr,
    gd_predictions,
    least_squares_predictions,
    sample_tasks,
)

__all__ = [
    "GDComparison",
    "HookedRegressor",
    "ICLConfig",
    "ICLModelRun",
    "ICLPreset",
    "ICLResult",
    "LengthCurve",
    "LinearSelfAttention",
    "RegressionTasks",
    "SoftmaxRegressor",
    "best_gd_lr",
    "compare_with_gd",
    "construction_fit",
    "gd_predictions",
    "least_squares_predictions",
    "run_icl",
    "sample_tasks",
]
