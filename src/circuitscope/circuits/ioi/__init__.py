"""The IOI circuit (Wang et al. 2022), found class by class on any causal model and tested as in the paper.

:func:`ioi_circuit` is the entry point: it builds the ABC IOI task, finds the seven head classes by
path patching (:func:`find_head_classes`), assembles the circuit, evaluates it with everything
outside it mean-ablated over the ABC distribution (:func:`evaluate_circuit`), writes its edges as a
circuit file (:func:`circuit_of`) and puts GPT-2 small's published circuit beside it (:func:`gpt2_small`).
"""

from circuitscope.circuits.ioi import result
from circuitscope.circuits.ioi.ablation import HeadMeanAblation, TemplateMeans, template_means
from circuitscope.circuits.ioi.classify import find_head_classes
from circuitscope.circuits.ioi.evaluate import circuit_of, evaluate_circuit
from circuitscope.circuits.ioi.positions import IOIPositions, ioi_positions
from circuitscope.circuits.ioi.reference import gpt2_small, published_circuit
from circuitscope.circuits.ioi.result import *  # noqa: F403  (the result types: result.__all__, added below)
from circuitscope.circuits.ioi.run import MIN_ACCURACY, IOICircuitConfig, ioi_circuit

__all__ = [
    "MIN_ACCURACY",
    "HeadMeanAblation",
    "IOICircuitConfig",
    "IOIPositions",
    "TemplateMeans",
    "circuit_of",
    "evaluate_circuit",
    "find_head_classes",
    "gpt2_small",
    "ioi_circuit",
    "ioi_positions",
    "published_circuit",
    "template_means",
]
__all__ += result.__all__
