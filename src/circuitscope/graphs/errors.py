"""Errors of the graphs package; each says what is wrong and how to fix it."""

from __future__ import annotations

from circuitscope.errors import CircuitscopeError

__all__ = ["GraphBudgetError", "GraphInputError"]


class GraphBudgetError(CircuitscopeError, ValueError):
    """A prompt whose attribution graph would need more memory than the budget allows."""


class GraphInputError(CircuitscopeError, ValueError):
    """A node, edge or file of a graph that does not exist in it or does not fit it."""
