"""Shared test guards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _no_global_autograd_switch() -> Iterator[None]:
    """Every test must leave autograd on: process-wide state changes leak into later tests."""
    yield
    assert torch.is_grad_enabled(), "the test (or the code it ran) switched autograd off process-wide"
    torch.set_grad_enabled(True)
