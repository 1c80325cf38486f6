"""Graphs in circuit-tracer's graph JSON, made by the tests (seeded): the input of the viewer's tests."""

from __future__ import annotations

import random
from typing import Any

__all__ = ["empty_graph", "one_node_graph", "synthetic_graph"]

PROMPT = ["<bos>", "The", " capital", " of", " the", " state", " containing", " Dallas", " is"]
_ANSWERS = [(" Austin", 0.41), (" Texas", 0.12), (" the", 0.05)]


def _metadata(tokens: list[str]) -> dict[str, Any]:
    return {
        "slug": "dallas-test",
        "scan": "tiny",
        "transcoder_list": [],
        "prompt_tokens": tokens,
        "prompt": "".join(tokens),
        "node_threshold": 0.8,
    }


def _qparams() -> dict[str, Any]:
    return {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""}


def _feature(rng: random.Random, layer: int, pos: int, index: int) -> dict[str, Any]:
    words = ["Texas", "capital", "state", "city", "say a place", "Dallas", "geography", "US state"]
    return {
        "node_id": f"{layer}_{index}_{pos}",
        "feature": index,
        "layer": str(layer),
        "ctx_idx": pos,
        "feature_type": "cross layer transcoder",
        "jsNodeId": f"{layer}_{index}-0",
        "clerp": f"{rng.choice(words)} L{layer}#{index}" if rng.random() < 0.5 else "",
        "influence": rng.random(),
        "activation": rng.uniform(0.1, 8.0),
        "top_logits": [{"token": t, "effect": round(rng.gauss(0, 1), 4)} for t in (" Austin", " Houston", " TX")],
        "top_contexts": [
            {
                "tokens": ["in", " Dallas", ",", " Texas"],
                "activations": [0.0, rng.uniform(1, 5), 0.2, rng.uniform(0, 3)],
            },
            {"tokens": ["the", " state", " capital"], "activations": [0.1, rng.uniform(0, 2), rng.uniform(1, 4)]},
        ],
    }


def synthetic_graph(
    n_layers: int = 6, features_per_cell: int = 5, max_sources: int = 12, seed: int = 0
) -> dict[str, Any]:
    """Embeddings, features and error nodes at every (layer, position), three logits at the last position,
    and links from lower rows at earlier-or-equal positions (errors and embeddings have no incoming links)."""
    rng = random.Random(seed)
    n_pos = len(PROMPT)
    nodes: list[dict[str, Any]] = []
    for pos, _token in enumerate(PROMPT):
        vocab = 100 + pos
        nodes.append(
            {
                "node_id": f"E_{vocab}_{pos}",
                "feature": pos,
                "layer": "E",
                "ctx_idx": pos,
                "feature_type": "embedding",
                "jsNodeId": f"E_{vocab}-{pos}",
                "influence": rng.random(),
            }
        )
    for layer in range(n_layers):
        for pos in range(n_pos):
            for index in rng.sample(range(1000), rng.randint(0, features_per_cell)):
                nodes.append(_feature(rng, layer, pos, index))
            nodes.append(
                {
                    "node_id": f"err_{layer}_{pos}",
                    "feature": -1,
                    "layer": str(layer),
                    "ctx_idx": pos,
                    "feature_type": "mlp reconstruction error",
                    "influence": rng.random(),
                }
            )
    for rank, (token, prob) in enumerate(_ANSWERS):
        vocab = 500 + rank
        nodes.append(
            {
                "node_id": f"{n_layers + 1}_{vocab}_{n_pos - 1}",
                "feature": vocab,
                "layer": str(n_layers + 1),
                "ctx_idx": n_pos - 1,
                "feature_type": "logit",
                "token_prob": prob,
                "is_target_logit": rank == 0,
                "jsNodeId": f"L_{vocab}-{n_pos - 1}",
                "clerp": f'Output "{token}" (p={prob:.3f})',
            }
        )

    def level(node: dict[str, Any]) -> int:
        kind = node["feature_type"]
        return -1 if kind == "embedding" else n_layers + 1 if kind == "logit" else int(node["layer"])

    links = []
    for target in nodes:
        if target["feature_type"] not in ("cross layer transcoder", "logit"):
            continue
        sources = [s for s in nodes if level(s) < level(target) and s["ctx_idx"] <= target["ctx_idx"]]
        for source in rng.sample(sources, min(len(sources), rng.randint(2, max_sources))):
            links.append({"source": source["node_id"], "target": target["node_id"], "weight": rng.gauss(0, 1)})
    return {"metadata": _metadata(PROMPT), "qParams": _qparams(), "nodes": nodes, "links": links}


def empty_graph() -> dict[str, Any]:
    """Valid and empty: no tokens, no nodes, no links."""
    return {"metadata": _metadata([]), "qParams": _qparams(), "nodes": [], "links": []}


def one_node_graph() -> dict[str, Any]:
    """One logit node and no links."""
    node = {
        "node_id": "3_7_0",
        "feature": 7,
        "layer": "3",
        "ctx_idx": 0,
        "feature_type": "logit",
        "token_prob": 1.0,
        "is_target_logit": True,
        "jsNodeId": "L_7-0",
        "clerp": 'Output "x" (p=1.000)',
    }
    return {"metadata": _metadata(["x"]), "qParams": _qparams(), "nodes": [node], "links": []}
