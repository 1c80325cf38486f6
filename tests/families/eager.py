"""Tiny recipes of the dense decoders whose attention transformers does not route through its attention registry (GPT-Neo, Falcon)."""

from __future__ import annotations

from tests.families.recipe import Tiny

RECIPES: list[Tiny] = []
