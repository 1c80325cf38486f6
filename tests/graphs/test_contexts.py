"""Top activating contexts of features, against one context at a time."""

from __future__ import annotations

import pytest
import torch

from circuitscope.graphs import feature_top_contexts
from circuitscope.sae.corpus import Corpus, build_contexts
from tests.graphs.conftest import random_transcoders
from tests.tiny_models import TinyModels

TEXT = "the cat sat on the mat. a dog ran to the park! the bird sang, and 42 fish swam by. " * 6


def test_top_contexts_are_the_most_activating_ones(tiny: TinyModels) -> None:
    model = tiny.text()
    tc = random_transcoders(model, "cross_layer")
    corpus = Corpus("t", [TEXT])
    found = feature_top_contexts(model, tc, [(1, 3), (0, 5)], corpus, n_contexts=10, context_size=12, k=2)
    tokens = build_contexts(model, corpus, 12, max_contexts=10).tokens[:10]
    for layer, index in ((1, 3), (0, 5)):
        rows = []
        for row in tokens:  # one context at a time
            _, cache = model.run_with_cache(row[None], names=tc.input_hook(layer))
            rows.append(tc.encode(layer, cache[tc.input_hook(layer)][0])[:, index].detach())
        acts = torch.stack(rows)
        best = torch.argsort(acts.max(1).values, descending=True)[:2]
        top = found[layer, index]
        assert len(top) == 2
        for entry, row in zip(top, best.tolist(), strict=True):
            assert entry["tokens"] == model.to_str_tokens(tokens[row])
            assert entry["activations"] == pytest.approx(acts[row].tolist(), abs=1e-5)
        assert max(top[0]["activations"]) >= max(top[1]["activations"]) > 0
