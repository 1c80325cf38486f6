"""Linear probes, CCS and a generated true/false statement data set."""

from circuitscope.probes.activations import Position, activations_at_position
from circuitscope.probes.ccs import CCSProbe, train_ccs
from circuitscope.probes.logistic import LinearProbe, split_indices, train_probe
from circuitscope.probes.statements import CAPITALS, Statement, Topic, contrast_pairs, true_false_statements
from circuitscope.probes.sweep import CCSSweep, ProbeSweep, ccs_sweep, probe_sweep

__all__ = [
    "CAPITALS",
    "CCSProbe",
    "CCSSweep",
    "LinearProbe",
    "Position",
    "ProbeSweep",
    "Statement",
    "Topic",
    "activations_at_position",
    "ccs_sweep",
    "contrast_pairs",
    "probe_sweep",
    "split_indices",
    "train_ccs",
    "train_probe",
    "true_false_statements",
]
