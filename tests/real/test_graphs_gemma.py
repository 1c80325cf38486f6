"""Real-model tier: an attribution graph on the embedded Gemma-3-270M with small transcoders trained here."""

from __future__ import annotations

import pytest
import torch

import circuitscope as cs
from circuitscope.graphs import GraphConfig, attribution_graph, graph_json, graph_scores, prune_graph
from circuitscope.progress import SILENT
from circuitscope.report.attribution_graph import validate_graph
from circuitscope.sae import Corpus
from circuitscope.transcoders.edit import FeatureEdit
from circuitscope.transcoders.train import train_transcoders
from circuitscope.transcoders.train_config import TranscoderTrainConfig

pytestmark = [pytest.mark.real, pytest.mark.slow]
FACTS = (
    "The Eiffel Tower is located in the city of Paris. The capital of France is Paris. The capital of Italy is "
    "Rome. The Colosseum is located in the city of Rome. The capital of Japan is Tokyo. "
)


def test_the_top_feature_edit_moves_the_answer_as_predicted(gemma: cs.HookedModel) -> None:
    cfg = TranscoderTrainConfig(d_sae=256, k=4, tokens=6144, context_size=64, batch_contexts=8, lr=3e-3)
    tc = train_transcoders(gemma, cfg, Corpus("facts", [FACTS * 60]), on_progress=SILENT).transcoders
    prompt = "The Eiffel Tower is located in the city of"
    graph = attribution_graph(gemma, tc, prompt, GraphConfig(batch_size=32), on_progress=SILENT)
    answer = gemma.to_single_token(" Paris")
    assert graph.logit_tokens[0] == answer  # the model's most likely next token
    rows = [i for i, n in enumerate(graph.nodes) if n.kind in ("feature", "logit")]
    conserved = graph.adjacency[rows].sum(1) + graph.biases[rows]
    torch.testing.assert_close(conserved, graph.inputs[rows], rtol=1e-4, atol=1e-3)
    scores = graph_scores(graph)
    assert 0 < scores.replacement <= 1 and 0 < scores.completeness <= 1
    validate_graph(graph_json(graph, prune_graph(graph)))
    # the feature with the largest direct effect on the answer's logit, zeroed in the real model
    logit_row = next(i for i, n in enumerate(graph.nodes) if n.kind == "logit" and n.index == answer)
    top = int(graph.adjacency[logit_row, : graph.n_features].abs().argmax())
    source, weight = graph.nodes[top], float(graph.adjacency[logit_row, top])
    tokens = gemma.to_tokens(prompt)
    edit = FeatureEdit(tc, source.layer, (source.index,), "zero", positions=(source.position,))
    with torch.no_grad():
        clean = gemma(tokens)[0, -1]
        edited = gemma(tokens, interventions=[edit])[0, -1]
    moved = float((edited[answer] - edited.mean()) - (clean[answer] - clean.mean()))
    assert moved * -weight > 0, f"zeroing {source} moved the answer's logit by {moved}, predicted {-weight}"
