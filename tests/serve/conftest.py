"""Fixtures of the explorer tests: a workbench on a tiny model, its app, an in-process client, a live server.

- ``workbench`` (module): :class:`~circuitscope.serve.Workbench` on the tiny character-level Llama
  (``tiny.text()``: every character is one token, so answers are single characters such as ``"a"``), with a
  random SAE at ``blocks.0.hook_resid_post``, random per-layer transcoders (tests/graphs' ``random_transcoders``),
  three ``--data`` texts, and the folder of :func:`serve_files` as a ``--files`` root.
- ``serve_files`` (session): a folder holding ``graph.json`` (a real pruned attribution graph of the tiny model),
  ``circuit.json`` (a two-edge circuit file of it) and ``vector.safetensors`` (an ActAdd vector at layer 0).
- ``serve_config`` (module): :class:`~circuitscope.serve.ServeConfig` with those files, sessions in a temporary
  folder and ``port=0``.
- ``app`` / ``client`` (module): the FastAPI app and a ``fastapi.testclient.TestClient`` on it (lifespan run).
- ``live_server`` (module): the same app served by uvicorn in a thread on a free loopback port; the value is its
  base URL (``http://127.0.0.1:PORT``); the server is shut down and its thread joined after the module. The
  browser test (test_page.py) drives the page there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient

import circuitscope as cs
from circuitscope.sae.base import SAE
from circuitscope.serve import ServeConfig, Workbench, create_app
from circuitscope.serve.server import running
from tests.graphs.conftest import random_transcoders
from tests.tiny_models import TinyModels

SAE_HOOK = "blocks.0.hook_resid_post"
DATA_TEXTS = [
    "the cat sat on the mat. the dog sat on the log.",
    "one two three four five six seven eight nine ten.",
    "a quick brown fox jumps over the lazy dog, again and again.",
]


def tiny_sae(model: cs.HookedModel, d_sae: int = 24, seed: int = 0) -> SAE:
    """A seeded random ReLU SAE on the model's ``SAE_HOOK``."""
    from circuitscope.sae.base import SAEConfig, create_sae

    cfg = SAEConfig(architecture="relu", d_in=model.cfg.d_model, d_sae=d_sae, hook_name=SAE_HOOK, exclude_bos=False)
    sae = create_sae(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return sae


def _write_files(folder: Path, model: cs.HookedModel) -> Path:
    from circuitscope.circuits import Circuit, Graph
    from circuitscope.core.fingerprint import model_fingerprint
    from circuitscope.graphs import GraphConfig, attribution_graph, graph_json, prune_graph
    from circuitscope.steering import actadd_vector, save_vector

    folder.mkdir(parents=True, exist_ok=True)
    tc = random_transcoders(model, d_sae=16)
    built = attribution_graph(model, tc, "the cat", GraphConfig(max_feature_nodes=16), on_progress=lambda *_: None)
    (folder / "graph.json").write_text(json.dumps(graph_json(built, prune_graph(built), "graph")), encoding="utf-8")
    cfg = model.cfg
    graph = Graph(cfg.n_layers, cfg.n_heads, cfg.n_kv_heads)
    edges = torch.zeros(graph.n_senders, graph.n_receivers, dtype=torch.bool)
    allowed = graph.allowed.nonzero()[:2]
    edges[allowed[:, 0], allowed[:, 1]] = True
    scores = torch.where(edges, torch.tensor(0.5), torch.tensor(float("nan")))
    Circuit(graph, edges, scores, "tiny-text", fingerprint=model_fingerprint(model)).save(folder / "circuit.json")
    save_vector(actadd_vector(model, "love", "hate", "blocks.0.hook_resid_pre"), folder / "vector.safetensors")
    return folder


@pytest.fixture(scope="session")
def serve_files(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with graph.json, circuit.json and vector.safetensors of the tiny text model."""
    return _write_files(tmp_path_factory.mktemp("serve-files"), tiny.text())


def make_workbench(model: cs.HookedModel) -> Workbench:
    """The test workbench on ``model``: one SAE, random transcoders, the data texts."""
    from circuitscope.serve.views.features import feature_sources

    tc = random_transcoders(model, d_sae=16)
    sources = feature_sources(model, [tiny_sae(model)], tc)
    return Workbench(model, name="tiny-text", sources=sources, transcoders=tc, data=DATA_TEXTS)


@pytest.fixture(scope="module")
def workbench(tiny: TinyModels) -> Workbench:
    """The explorer's workbench on a copy of the tiny text model (one per test module)."""
    return make_workbench(tiny.text())


@pytest.fixture(scope="module")
def serve_config(serve_files: Path, tmp_path_factory: pytest.TempPathFactory) -> ServeConfig:
    return ServeConfig(port=0, files=(serve_files,), sessions=tmp_path_factory.mktemp("sessions"))


@pytest.fixture(scope="module")
def app(workbench: Workbench, serve_config: ServeConfig) -> FastAPI:
    return create_app(workbench, serve_config)


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    """An in-process client of ``app`` (its lifespan runs: jobs are joined when the module ends)."""
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def live_server(app: FastAPI, serve_config: ServeConfig) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port for the module: its base URL."""
    with running(app, serve_config) as url:
        yield url
