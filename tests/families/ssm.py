"""Tiny recipes of the state-space and hybrid families (Mamba, Mamba 2, a hybrid)."""

from __future__ import annotations

from tests.families.recipe import Tiny

RECIPES: list[Tiny] = []
