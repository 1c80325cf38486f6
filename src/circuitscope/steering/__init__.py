"""Steering vectors: build a direction (ActAdd, CAA, PCA, probe, function vector), apply it, sweep it, save it.

A :class:`SteeringVector` is an intervention: ``model.generate(prompt, interventions=[v])`` generates with
steering; so do ``with model.apply(v):`` and ``model(tokens, interventions=[v])``. As plain hooks:
``model.run_with_hooks(tokens, steering_hooks(v))``.
"""

from circuitscope.core.fingerprint import model_fingerprint
from circuitscope.engine.loss import mean_loss
from circuitscope.steering.apply import steering_hooks
from circuitscope.steering.build import actadd_vector, caa_vector, pca_vector, probe_vector
from circuitscope.steering.function_vectors import (
    FunctionVectorResult,
    function_vector,
    icl_prompt,
    zero_shot_accuracy,
)
from circuitscope.steering.io import load_vector, save_vector
from circuitscope.steering.sweep import (
    SteeringSweep,
    SweepCell,
    probe_score_of_generations,
    steering_sweep,
    target_logprob,
)
from circuitscope.steering.tasks import ICL_TASKS, IclTask
from circuitscope.steering.vector import (
    SteeringVector,
    SteeringVectorMismatchError,
    VectorMethod,
    apply_steering,
)

__all__ = [
    "ICL_TASKS",
    "FunctionVectorResult",
    "IclTask",
    "SteeringSweep",
    "SteeringVector",
    "SteeringVectorMismatchError",
    "SweepCell",
    "VectorMethod",
    "actadd_vector",
    "apply_steering",
    "caa_vector",
    "function_vector",
    "icl_prompt",
    "load_vector",
    "mean_loss",
    "model_fingerprint",
    "pca_vector",
    "probe_score_of_generations",
    "probe_vector",
    "save_vector",
    "steering_hooks",
    "steering_sweep",
    "target_logprob",
    "zero_shot_accuracy",
]
