"""Tiny recipes of the encoders of issue 14 (RoBERTa, DistilBERT, ModernBERT)."""

from __future__ import annotations

from tests.families.recipe import Tiny

RECIPES: list[Tiny] = []
