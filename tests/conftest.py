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


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """How ``make test`` shares the tests between its two processes (``--dist loadgroup``).

    - Each test file is one group, run by one process, so that its module fixtures load once; but every
      block of test_readme.py goes on its own (each loads its own model), so both processes share its blocks.
    - In a distributed run the files with a real-model or slow test go first: the long groups start early
      and the short ones fill in at the end, so neither process is left alone with a long file at the end.
    """
    for item in items:
        if item.path.name != "test_readme.py" and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
    if getattr(config.option, "loadgroup", False):  # set on pytest-xdist's workers under --dist loadgroup
        heavy = {item.path for item in items if item.get_closest_marker("real") or item.get_closest_marker("slow")}
        items.sort(key=lambda item: item.path not in heavy)  # stable: collection order within each part


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """Every tiny model built once per session; ``tiny.hooked("gpt2")`` etc. hand out fresh copies."""
    return TinyModels(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="module")
def text_model(tiny: TinyModels) -> cs.HookedModel:
    """The tiny text model (``tiny.text()``), one copy per test module: for modules whose tests attach hooks to it."""
    return tiny.text()


def model_state(model: cs.HookedModel) -> tuple[object, ...]:
    """What a test could leave changed on a model: hooks, mode, which tensors and their values, the tokenizer."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one summation order, whatever the test left the thread count at
    try:
        params = tuple(
            (name, p.data_ptr(), p.dtype, p.requires_grad, float(p.detach().sum()))
            for name, p in model.named_parameters()
        )
    finally:
        torch.set_num_threads(threads)
    tok = model.tokenizer
    return (model.active_hooks(), model.hf_model.training, params, tok and (len(tok), tok.padding_side))


@pytest.fixture(scope="session")
def _gemma_once() -> tuple[cs.HookedModel, tuple[object, ...]]:
    """The embedded Gemma-3-270M loaded once per test process (a load parses its 33 MB tokenizer), its state."""
    model = cs.load_model(cs.DEFAULT_MODEL)
    return model, model_state(model)


@pytest.fixture(scope="module")
def gemma(_gemma_once: tuple[cs.HookedModel, tuple[object, ...]]) -> Iterator[cs.HookedModel]:
    """The embedded Gemma-3-270M (real tier only: tests that take it are marked ``real``), shared by the modules
    of a test process: after each module it must be as loaded (no hook, eval mode, the same weights), or the
    module errors here (give it its own ``cs.load_model(cs.DEFAULT_MODEL)`` if it must change the model)."""
    model, loaded = _gemma_once
    yield model
    assert model_state(model) == loaded, "this module left the shared Gemma changed (hooks, mode or weights)"


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
