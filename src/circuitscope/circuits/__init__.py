"""Circuit discovery: the computational graph, EAP / EAP-IG / ACDC, circuit files, faithfulness."""

from circuitscope.circuits._acdc import acdc
from circuitscope.circuits._eap import EdgeScores, eap, eap_ig, edge_scores
from circuitscope.circuits._faithfulness import (
    CircuitRunner,
    Faithfulness,
    FaithfulnessCurve,
    faithfulness,
    faithfulness_curve,
)
from circuitscope.circuits.circuit import Circuit
from circuitscope.circuits.discover import METHODS, Discovery, discover_circuit
from circuitscope.circuits.graph import CircuitError, Graph, Receiver, Sender
from circuitscope.circuits.intervene import EdgeRun, graph_of, sender_outputs
from circuitscope.circuits.reference import ABLATIONS, reference_outputs

__all__ = [
    "ABLATIONS",
    "METHODS",
    "Circuit",
    "CircuitError",
    "CircuitRunner",
    "Discovery",
    "EdgeRun",
    "EdgeScores",
    "Faithfulness",
    "FaithfulnessCurve",
    "Graph",
    "Receiver",
    "Sender",
    "acdc",
    "discover_circuit",
    "eap",
    "eap_ig",
    "edge_scores",
    "faithfulness",
    "faithfulness_curve",
    "graph_of",
    "reference_outputs",
    "sender_outputs",
]
