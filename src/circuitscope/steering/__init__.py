"""Steering vectors: build a direction (ActAdd, CAA, PCA, probe, function vector), apply it, sweep it, save it.

``model.generate(prompt, hooks=steering_hooks([v]))`` generates with steering; so do
``with model.hooks(steering_hooks(v)):`` and ``model.run_with_hooks(tokens, steering_hooks(v))``.
"""

from circuitscope.steering.apply import apply_steering, steering_hooks
from circuitscope.steering.build import actadd_vector, caa_vector, pca_vector, probe_vector
from circuitscope.steering.function_vectors import (
    FunctionVectorResult,
    function_vector,
    icl_prompt,
    plot_function_vector,
    zero_shot_accuracy,
)
from circuitscope.steering.io import load_vector, save_vector
from circuitscope.steering.sweep import (
    SteeringSweep,
    mean_loss,
    plot_sweep,
    probe_score_of_generations,
    steering_sweep,
    target_logprob,
)
from circuitscope.steering.tasks import ICL_TASKS, IclTask
from circuitscope.steering.vector import SteeringVector, SteeringVectorMismatchError, model_fingerprint

__all__ = [
    "ICL_TASKS",
    "FunctionVectorResult",
    "IclTask",
    "SteeringSweep",
    "SteeringVector",
    "SteeringVectorMismatchError",
    "actadd_vector",
    "apply_steering",
    "caa_vector",
    "function_vector",
    "icl_prompt",
    "load_vector",
    "mean_loss",
    "model_fingerprint",
    "pca_vector",
    "plot_function_vector",
    "plot_sweep",
    "probe_score_of_generations",
    "probe_vector",
    "save_vector",
    "steering_hooks",
    "steering_sweep",
    "target_logprob",
    "zero_shot_accuracy",
]
