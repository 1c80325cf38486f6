"""Shared test guards, and the session's tiny models."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

import circuitscope as cs
from tests.tiny_models import TinyModels


def pytest_configure(config: pytest.Config) -> None:
    """Settings of the test processes themselves, not of circuitscope.

    - Under pytest-xdist (``make test`` runs two processes on the two cores) each process gets one torch
      thread: two processes of two threads each on two cores run small models many times slower.
    - A wide console, so that rich does not fold a long temporary path inside a message a test looks for.
    """
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
    os.environ.setdefault("COLUMNS", "400")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """Every tiny model built once per session; ``tiny.hooked("gpt2")`` etc. hand out fresh copies."""
    return TinyModels(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="module")
def text_model(tiny: TinyModels) -> cs.HookedModel:
    """The tiny text model (``tiny.text()``), one copy per test module: for modules whose tests attach hooks to it."""
    return tiny.text()


@pytest.fixture(scope="module")
def gemma() -> cs.HookedModel:
    """The embedded Gemma-3-270M (real tier only: tests that take it are marked ``real``), once per module."""
    return cs.load_model(cs.DEFAULT_MODEL)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Small matrices run faster (and far more steadily on a shared CPU) on one torch thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _no_global_autograd_switch() -> Iterator[None]:
    """Every test must leave autograd on: process-wide state changes leak into later tests."""
    yield
    assert torch.is_grad_enabled(), "the test (or the code it ran) switched autograd off process-wide"
    torch.set_grad_enabled(True)
